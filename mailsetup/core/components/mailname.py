"""/etc/mailname: the domain that locally posted mail appears to come from (myorigin)."""

from mailsetup.fileutil import read_bytes, write_atomic


class Mailname:
    name = "mailname"

    def __init__(self, system):
        self.path = system.mailname_path

    def files(self):
        return [self.path]

    def read_current(self):
        return read_bytes(self.path)

    def plan(self, settings, current):
        wanted = f"{settings.mail_domain}\n".encode()
        return wanted if wanted != current else None

    def record_originals(self, state, plan, current):
        state.record_file_original("mailname", current)

    def apply(self, plan):
        if plan is not None:
            write_atomic(self.path, plan)

    @staticmethod
    def answers_from_system(current):
        text = (current or b"").decode("utf-8", errors="replace").strip()
        return {"mail_domain": text} if text else {}
