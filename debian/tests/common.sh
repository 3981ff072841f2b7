# Shared by the tests in debian/tests (sourced, POSIX sh).
# Every command that may talk on stderr has it sent to stdout: autopkgtest
# fails a test that writes to stderr, and only real failures should.

DOMAIN=autopkgtest.test
HOST=mail.autopkgtest.test
ADMIN=aptadmin

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

# preseed [QUESTION TYPE VALUE]...: the base answers, then the overrides.
preseed() {
    {
        echo "mailsetup mailsetup/mail_domain string $DOMAIN"
        echo "mailsetup mailsetup/hostname string $HOST"
        # local: Postfix listens on loopback only, whatever machine this is.
        echo "mailsetup mailsetup/mailer_type select local"
        echo "mailsetup mailsetup/relayhost string "
        echo "mailsetup mailsetup/admin_user string $ADMIN"
        echo "mailsetup mailsetup/aliases string webmaster: $ADMIN"
        echo "mailsetup mailsetup/message_size_limit string 20"
        while [ $# -ge 3 ]; do
            echo "mailsetup mailsetup/$1 $2 $3"
            shift 3
        done
    } | debconf-set-selections
}

reconfigure() {
    DEBIAN_FRONTEND=noninteractive dpkg-reconfigure mailsetup 2>&1 ||
        fail "dpkg-reconfigure mailsetup exited $?"
}

# expect_postconf KEY VALUE
expect_postconf() {
    got=$(postconf -h "$1" 2>&1) || fail "postconf $1: $got"
    [ "$got" = "$2" ] || fail "main.cf: $1 = '$got', expected '$2'"
    echo "ok: $1 = $2"
}

# ensure_running SERVICE...: start through invoke-rc.d whatever does not run
# (under systemd the packages started it; in a container without an init
# system the init script starts it); stop_started stops only those again.
# Postfix is asked through `postfix status`: under systemd its master belongs
# to postfix@-.service, and postfix.service is active even when that is not.
STARTED=
ensure_running() {
    for service in "$@"; do
        if [ "$service" = postfix ]; then
            postfix status >/dev/null 2>&1 && continue
        else
            invoke-rc.d --quiet "$service" status >/dev/null 2>&1 && continue
        fi
        invoke-rc.d "$service" start 2>&1 || { service_state "$service"; fail "$service does not start"; }
        STARTED="$STARTED $service"
    done
}
stop_started() {
    for service in $STARTED; do
        invoke-rc.d "$service" stop >/dev/null 2>&1 || true
    done
}

# service_state SERVICE...: what the init system says of them, for a failure.
service_state() {
    for service in "$@"; do
        echo "--- $service"
        if [ "$service" = postfix ]; then
            postfix status 2>&1 || true
        fi
        if [ -d /run/systemd/system ]; then
            systemctl --no-pager --lines=20 status "$service*" 2>&1 || true
        fi
    done
}
