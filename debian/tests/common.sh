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
