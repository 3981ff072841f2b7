"""A person in headless Chromium using the webmail (Roundcube, as mailsetup-webmail
serves it): run by the host's python3 (python3-selenium, chromium-driver) inside the
test bed's network namespace, one action a run, one JSON request on stdin and one
JSON answer on stdout:

    {"action": "login"|"inbox"|"send"|"vacation"|"filter"|"junk"|"password",
     "base": "https://mail.example.test/webmail/", "user": ..., "password": ..., ...}

Every name resolves to 127.0.0.1 in that namespace (--host-resolver-rules), so the
browser asks for the webmail's real name, and the snakeoil certificate is accepted
(--ignore-certificate-errors): it names the host but no authority signed it.
What the user does is done through the page: the login form, Roundcube's own
commands (rcmail.command, what its buttons call) and its forms.
"""

import json
import sys
import time

from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

WAIT = 30


def browser(profile):
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--ignore-certificate-errors",
                "--host-resolver-rules=MAP * 127.0.0.1", "--window-size=1280,900", "--lang=en-US",
                "--user-data-dir=" + profile):
        options.add_argument(arg)
    options.binary_location = "/usr/bin/chromium"
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def idle(d):
    """Roundcube has loaded the page and finished its requests."""
    WebDriverWait(d, WAIT).until(lambda d: d.execute_script(
        "return document.readyState == 'complete' && window.rcmail && !rcmail.busy"))


def messages_shown(d):
    return d.execute_script("""
        var box = document.getElementById('messagestack');
        return box ? box.innerText.trim() : '';""")


def login(d, p):
    d.get(p["base"])
    d.find_element(By.ID, "rcmloginuser").send_keys(p["user"])
    d.find_element(By.ID, "rcmloginpwd").send_keys(p["password"])
    started = time.time()
    d.find_element(By.ID, "rcmloginsubmit").click()
    try:
        WebDriverWait(d, WAIT).until(lambda d: d.execute_script(
            "return window.rcmail && rcmail.env.task == 'mail' && rcmail.message_list"
            " && !rcmail.busy && document.readyState == 'complete'")
            or d.find_elements(By.ID, "rcmloginuser") and messages_shown(d))
    except TimeoutException:
        pass
    ok = bool(d.execute_script("return window.rcmail && rcmail.env.task == 'mail'"))
    if ok:
        # the inbox's list, filled by a request of its own after the page
        WebDriverWait(d, WAIT).until(lambda d: d.execute_script(
            "return !rcmail.busy && document.querySelector('#messagelist tbody') != null"))
    return {"ok": ok, "seconds": time.time() - started, "message": messages_shown(d), "title": d.title,
            "url": d.current_url, "lang": d.execute_script("return document.documentElement.lang")}


def subjects(d):
    return d.execute_script("""
        return Array.from(document.querySelectorAll('#messagelist tbody tr .subject a'))
            .map(function (a) { return a.textContent.trim(); });""")


def act_login(d, p):
    return login(d, p)


def act_inbox(d, p):
    """The subjects listed in the inbox after logging in (waiting for one, if given)."""
    result = login(d, p)
    if result["ok"] and p.get("wait_for"):
        end = time.time() + WAIT
        while p["wait_for"] not in subjects(d) and time.time() < end:
            d.execute_script("rcmail.command('checkmail')")
            time.sleep(1)
            idle(d)
    result["subjects"] = subjects(d) if result["ok"] else []
    if p.get("screenshot"):
        d.save_screenshot(p["screenshot"])
    return result


def act_send(d, p):
    result = login(d, p)
    if not result["ok"]:
        return result
    d.get(p["base"] + "?_task=mail&_action=compose&_to=" + p["to"])
    idle(d)
    d.find_element(By.ID, "compose-subject").send_keys(p["subject"])
    d.find_element(By.ID, "composebody").send_keys(p["body"])
    d.execute_script("rcmail.command('send', '')")  # what its Send button calls
    try:
        WebDriverWait(d, WAIT).until(lambda d: "_action=compose" not in d.current_url)
        result["sent"] = True
    except TimeoutException:
        result["sent"] = False
    result["message"] = messages_shown(d)
    return result


def save_form(d):
    """Press the form's Save button, as a person would; the confirmation shown."""
    button = d.find_element(By.CSS_SELECTOR, "button.mainaction, .formbuttons button.submit, button.submit")
    button.click()
    # "Saving..." first, then Roundcube's confirmation or error
    time.sleep(0.5)
    idle(d)
    return messages_shown(d)


def act_vacation(d, p):
    result = login(d, p)
    if not result["ok"]:
        return result
    d.get(p["base"] + "?_task=settings&_action=plugin.managesieve-vacation")
    idle(d)
    d.find_element(By.NAME, "vacation_subject").send_keys(p["subject"])
    d.find_element(By.NAME, "vacation_reason").send_keys(p["body"])
    Select(d.find_element(By.NAME, "vacation_status")).select_by_value("on")
    result["saved"] = save_form(d)
    return result


def act_filter(d, p):
    """A filter: mail whose From contains p["from"] goes into folder p["folder"]."""
    result = login(d, p)
    if not result["ok"]:
        return result
    # The filters page first: it makes the filter set on first use.
    d.get(p["base"] + "?_task=settings&_action=plugin.managesieve")
    idle(d)
    d.get(p["base"] + "?_task=settings&_action=plugin.managesieve-action&_framed=1&_nav=hide")
    idle(d)
    d.find_element(By.NAME, "_name").send_keys(p["name"])
    Select(d.find_element(By.NAME, "_header[0]")).select_by_value("from")
    Select(d.find_element(By.NAME, "_rule_op[0]")).select_by_value("contains")
    d.find_element(By.NAME, "_rule_target[0][]").send_keys(p["from"])
    Select(d.find_element(By.NAME, "_action_type[0]")).select_by_value("fileinto")
    folders = Select(d.find_element(By.NAME, "_action_mailbox[0]"))
    result["folders"] = [o.get_attribute("value") for o in folders.options]
    folders.select_by_value(p["folder"])
    result["saved"] = save_form(d)
    return result


def act_junk(d, p):
    """Open the message with subject p["subject"] from the inbox and mark it as junk."""
    result = login(d, p)
    if not result["ok"]:
        return result
    uid = d.execute_script("""
        var rows = rcmail.message_list.rows;
        for (var uid in rows) {
            var a = rows[uid].obj.querySelector('.subject a');
            if (a && a.textContent.trim() == arguments[0]) return uid;
        }
        return null;""", p["subject"])
    result["found"] = uid is not None
    if uid is None:
        result["subjects"] = subjects(d)
        return result
    # Open the message, as a person reading it does, and press "Junk" there.
    d.get(p["base"] + "?_task=mail&_mbox=INBOX&_action=show&_uid=" + str(uid))
    idle(d)
    result["enabled"] = bool(d.execute_script("return !!rcmail.commands['plugin.markasjunk.junk']"))
    shown = d.current_url
    d.execute_script("rcmail.command('plugin.markasjunk.junk', '')")
    # Moved: Roundcube goes on to the next message, or back to the list.
    try:
        WebDriverWait(d, WAIT).until(lambda d: d.current_url != shown)
        idle(d)
        result["left"] = True
    except TimeoutException:
        result["left"] = False
    result["message"] = messages_shown(d)
    return result


def act_password(d, p):
    result = login(d, p)
    if not result["ok"]:
        return result
    d.get(p["base"] + "?_task=settings&_action=plugin.password")
    idle(d)
    d.find_element(By.NAME, "_curpasswd").send_keys(p["password"])
    d.find_element(By.NAME, "_newpasswd").send_keys(p["new_password"])
    d.find_element(By.NAME, "_confpasswd").send_keys(p["new_password"])
    result["saved"] = save_form(d)
    return result


def main():
    p = json.load(sys.stdin)
    d = browser(p["profile"])
    try:
        d.set_page_load_timeout(WAIT)
        result = globals()["act_" + p["action"]](d, p)
    except Exception as err:  # the test shows what the page was
        result = {"error": "%s: %s" % (type(err).__name__, str(err).splitlines()[0]), "url": d.current_url,
                  "options": d.execute_script(
                      "return Array.from(document.querySelectorAll('select option')).map(o => o.value)"),
                  "message": messages_shown(d) if d.current_url.startswith("https") else ""}
        if p.get("failure_screenshot"):
            d.save_screenshot(p["failure_screenshot"])
    finally:
        d.quit()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
