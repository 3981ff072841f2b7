"""main.cf keys set with postconf, their originals recorded for purge to put back.

A subclass gives its ``name``, ``MANAGED_KEYS`` (every key desired() may set) and
``desired(settings)``: key -> value (None removes the key from main.cf).
read_current() is then key -> explicit value in main.cf (None where unset), a
plan the keys whose value has to change (key -> new value), and
record_originals() records the current values of those keys.

A subclass that reads more than these keys overrides read_current(), plan()
and record_originals(), which then find the keys' reading under "explicit":
PostfixVirtual (mailsetup-imap) reads the master.cf services too, and
PostfixMain (the core) the effective alias settings, which its
desired(settings, current) takes as a second argument.
"""


class MainCfKeys:
    name = None
    MANAGED_KEYS = ()

    def __init__(self, system):
        self.system = system
        self.postconf = system.postconf()

    def files(self):
        return [self.system.main_cf_path]

    def read_current(self):
        return self.postconf.explicit(list(self.MANAGED_KEYS))

    def desired(self, settings):
        """key -> value for every key this component sets (None: no such line in main.cf)."""
        raise NotImplementedError

    def plan(self, settings, current):
        return {k: v for k, v in self.desired(settings).items() if current[k] != v}

    def record_originals(self, state, plan, current):
        state.record_postfix_originals({k: current[k] for k in plan})

    def apply(self, plan):
        if plan:
            self.postconf.change(plan)
