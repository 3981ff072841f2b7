"""`mailsetup access` changes: one at a time, written and reloaded, undone on failure.

Apart from access.py (pure code, which the AccessMaps component imports) so
that neither imports the other.
"""

import os

from mailsetup import fileutil, postfix_service, services
from mailsetup.errors import ApplyFailed, CommandFailed
from mailsetup.fileutil import Snapshot
from mailsetup.filter.health import RSPAMD
from mailsetup.filter.components.access_maps import AccessMaps
from mailsetup.i18n import _


def access_locked(system):
    """One `mailsetup access` change at a time (read, change, write): a context manager."""
    return fileutil.locked(os.path.join(system.filter_state_dir, ".access-lock"))


def change_access(system, lists):
    """Write the access lists' files and reload Postfix and rspamd; the files written.

    Postfix re-reads its cidr and texthash tables only on reload; rspamd would
    notice its maps within about 30 s, a HUP makes it at once."""
    maps = AccessMaps(system)
    current = maps.read_current()
    plan = maps.plan(lists, current)
    if not plan:
        return []
    snapshot = Snapshot(list(plan))
    try:
        maps.apply(plan)
        postfix_service.apply_changes(system)
    except (CommandFailed, OSError) as err:
        snapshot.restore()
        raise ApplyFailed(_("changing the access lists failed, they are as before: {error}").format(
            error=err)) from err
    service = services.of(system)
    if service.running(RSPAMD):
        service.reload(RSPAMD)
    return sorted(plan)
