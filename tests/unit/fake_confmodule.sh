# A stand-in for /usr/share/debconf/confmodule, for tests/unit/test_config_dialog.py:
# the db_* commands a config script uses, acting like debconf with a person at
# an interactive frontend. In $FAKE_DIR:
#   db/QUESTION   the answers (QUESTION with "/" as "_"), read and written
#   typed         what the person types, one line per question shown, in
#                 order: "QUESTION ANSWER" or "QUESTION <back>" (Go Back)
#   hidden        questions db_input does not show (preseeded and seen, too
#                 low a priority), one a line
#   log           what happened: "ask QUESTION", "note", "subst ...", "back"
#   gos           a line per db_go

_fake_file() {
    echo "$FAKE_DIR/db/$(echo "$1" | tr / _)"
}

db_version() { :; }
db_capb() { :; }
db_fget() { RET=false; }
db_fset() { :; }
db_metaget() { RET=; }

db_get() {
    RET=$(cat "$(_fake_file "$1")" 2>/dev/null || true)
}

db_set() {
    printf '%s' "$2" >"$(_fake_file "$1")"
}

db_subst() {
    echo "subst $1 $2 $3" >>"$FAKE_DIR/log"
}

db_input() {
    if grep -qxF "$2" "$FAKE_DIR/hidden" 2>/dev/null; then
        return 30
    fi
    echo "$2" >>"$FAKE_DIR/queue"
}

# Shows what was queued; like debconf, a go with nothing to show right after
# a Go Back backs up again.
db_go() {
    echo go >>"$FAKE_DIR/gos"
    if [ ! -s "$FAKE_DIR/queue" ]; then
        rm -f "$FAKE_DIR/queue"
        if [ -e "$FAKE_DIR/backed_up" ]; then
            return 30
        fi
        return 0
    fi
    while read -r question; do
        if [ "$question" = mailsetup/invalid_answer ]; then
            echo "note" >>"$FAKE_DIR/log"
            continue
        fi
        echo "ask $question" >>"$FAKE_DIR/log"
        line=$(head -n 1 "$FAKE_DIR/typed")
        if [ -z "$line" ]; then
            echo "nothing typed for $question" >&2
            exit 99
        fi
        sed -i 1d "$FAKE_DIR/typed"
        if [ "${line%% *}" != "$question" ]; then
            echo "typed for ${line%% *}, asked $question" >&2
            exit 98
        fi
        value=${line#* }
        [ "$line" != "$question" ] || value=
        if [ "$value" = "<back>" ]; then
            echo "back" >>"$FAKE_DIR/log"
            rm -f "$FAKE_DIR/queue"
            : >"$FAKE_DIR/backed_up"
            return 30
        fi
        db_set "$question" "$value"
    done <"$FAKE_DIR/queue"
    rm -f "$FAKE_DIR/queue" "$FAKE_DIR/backed_up"
    return 0
}
