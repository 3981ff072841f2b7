"""mailsetup-filter's section of `mailsetup status` (see cli/status.py): whether
rspamd runs and Postfix can reach its milter."""

from mailsetup import services
from mailsetup.filter import health
from mailsetup.filter.apply import configured
from mailsetup.i18n import _


def running(system):
    """Nothing before the ports: rspamd is shown with its milter, in the details."""
    return {}


def collect(system, postfix_configured):
    """Only filter_configured, False, when mailsetup-filter or Postfix is not set up."""
    if not postfix_configured or not configured(system):
        return {"filter_configured": False}
    rspamd_running = services.of(system).running(health.RSPAMD)
    path = health.milter_path(system)
    if not health.milter_checkable(path):  # its directory is for rspamd and Postfix only
        return {"filter_configured": True, "rspamd_running": rspamd_running, "milter_socket": path,
                "milter_reachable": None, "milter_problem": None}
    problem = health.milter_problem(path)
    return {"filter_configured": True, "rspamd_running": rspamd_running, "milter_socket": path,
            "milter_reachable": problem is None, "milter_problem": problem}


def print_running(status, out):
    """Nothing: see running()."""


def print_details(status, out):
    """rspamd and its milter socket, once mailsetup-filter is set up."""
    if not status.get("filter_configured"):
        return
    if not status["rspamd_running"]:
        print(_("Filter (rspamd): NOT running"), file=out)
    elif status["milter_reachable"] is None:
        print(_("Filter (rspamd): running (only root can check its milter socket)"), file=out)
    elif status["milter_reachable"]:
        print(_("Filter (rspamd): running, milter reachable"), file=out)
    else:
        print(_("Filter (rspamd): running, milter NOT reachable"), file=out)
    if status["milter_problem"] and status["rspamd_running"]:
        print(status["milter_problem"], file=out)


def healthy(status):
    """Postfix defers all mail while the filter is down."""
    if not status.get("filter_configured"):
        return True
    return bool(status["rspamd_running"]) and status["milter_reachable"] is not False
