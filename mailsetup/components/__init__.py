"""One module per configured component, all of the same shape:

- ``files()``: the paths apply() may change, snapshotted so a failed apply is undone;
- ``read_current()``: the component's state as it is on the system now;
- ``plan(settings, current)``: what has to change (empty/falsy: nothing);
- ``record_originals(state, plan)``: remember, once, what purge must restore;
- ``apply(plan)``: make the change with the component's own tools;
- ``answers_from_system(current)``: the debconf answers the system reflects,
  for reading hand edits back into the questions.

Components that set main.cf keys with postconf derive from postfix_keys.MainCfKeys
(files, read_current, plan, record_originals, apply); they give name,
MANAGED_KEYS and desired(settings).

Restoring the originals at purge is done by postrm (sh) from the state files.
"""
