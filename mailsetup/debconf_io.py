"""The one module that talks debconf.

Maintainer scripts source confmodule and start us; we speak the debconf
protocol over the inherited descriptors: replies on stdin, commands on fd 3
(the apt-listchanges pattern).
"""

import os
import sys

from mailsetup.validate import InvalidAnswer, show

OWNER = "mailsetup"
INVALID_ANSWER = "mailsetup/invalid_answer"
QUESTION_SKIPPED = 30  # debconf status: input not shown (noninteractive, or priority too low)
QUESTION_UNKNOWN = 10  # debconf status: no such question (its package's templates are not loaded)


def ask_until_valid(questions, settings_from_answers):
    """settings_from_answers() reads the answers and returns them as settings; a refused
    answer is asked again where someone can answer, else its InvalidAnswer is raised."""
    while True:
        try:
            return settings_from_answers()
        except InvalidAnswer as invalid:
            if not questions.ask_again(invalid):
                raise


class Questions:
    def __init__(self, db=None):
        if db is None:
            import debconf  # python3-debconf; imported here so pure code can be tested without it
            db = debconf.Debconf(read=sys.stdin, write=os.fdopen(3, "w"))
        self.db = db

    def _status(self, err):
        return err.args[0] if err.args else None

    def get(self, question):
        return self.db.get(question)

    def answers(self, owner, names):
        """question (without owner) -> answer, for the questions names of the package owner.

        Read with the "escape" capability: without it debconf silently cuts a
        value with a line break (a preseeded "\\n" becomes one) to its first
        line, so a bad answer would be applied in part instead of refused.
        Only for these reads: with it, debconf also unescapes what we send.
        """
        self.db.capb("escape")
        try:
            return {q: self.db.get(f"{owner}/{q}") for q in names}
        finally:
            self.db.capb()

    def seen(self, question, owner=OWNER):
        return self.db.fget(f"{owner}/{question}", "seen") == "true"

    def set(self, question, value, owner=OWNER):
        self.db.set(f"{owner}/{question}", value)

    def ask_again(self, invalid):
        """Show why an answer was refused and ask the question again.

        Returns False when nobody can be asked (noninteractive frontend).
        """
        import debconf
        question = f"{invalid.owner}/{invalid.question}"
        try:
            self.db.subst(INVALID_ANSWER, "question", question)
            self.db.subst(INVALID_ANSWER, "value", show(invalid.value)[1:-1])  # the template quotes it
            self.db.subst(INVALID_ANSWER, "problem", invalid.expected)
            self.db.fset(INVALID_ANSWER, "seen", "false")
            self.db.input(debconf.CRITICAL, INVALID_ANSWER)
            self.db.fset(question, "seen", "false")
            self.db.input(debconf.CRITICAL, question)
            self.db.go()
        except debconf.DebconfError as err:
            if self._status(err) == QUESTION_SKIPPED:
                return False
            raise
        return True

    def sync_others(self, wanted, record_originals):
        """Copy our values into another package's questions (wanted: "owner/name" ->
        value), marked seen; a question whose package is not there is left out.

        Stale answers would otherwise be written back by that package's
        dpkg-reconfigure: postfix/* over main.cf, roundcube/* over Roundcube's
        configuration. record_originals(dict) is given the values before our
        first change, for purge to put back.
        """
        import debconf
        current = {}
        for question in wanted:
            try:
                current[question] = self.db.get(question)
            except debconf.DebconfError as err:
                if self._status(err) != QUESTION_UNKNOWN:
                    raise
        changes = {q: v for q, v in wanted.items() if q in current and current[q] != v}
        record_originals({q: current[q] for q in changes})
        for question, value in changes.items():
            self.db.set(question, value)
        for question in current:
            self.db.fset(question, "seen", "true")
