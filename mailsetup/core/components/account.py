"""The admin's local account, which receives root's and postmaster's mail.

Created when missing, with no password login; purge leaves it, since it may hold mail.
"""


class AdminAccount:
    name = "admin account"

    def __init__(self, system):
        self.system = system

    def files(self):
        return []

    def read_current(self):
        return None

    def plan(self, settings, current):
        user = settings.admin_user
        if not self.system.run_services or self.system.account_exists(user):
            return None
        return user

    def record_originals(self, state, plan, current):
        pass  # an account we created is left at purge

    def apply(self, plan):
        if plan:
            self.system.run(["adduser", "--quiet", "--disabled-password", "--comment", "", plan])

    @staticmethod
    def answers_from_system(current):
        return {}
