"""mailsetup-webmail without root or services: the answers, our nginx site,
Roundcube's settings, the links in sites-enabled and the status parsing."""

import os

import pytest

from mailsetup import tls_profile
from mailsetup.system import System
from mailsetup.validate import InvalidAnswer
from mailsetup.webmail import settings as webmail_settings
from mailsetup.webmail import status as webmail_status
from mailsetup.webmail.components import nginx, roundcube
from mailsetup.webmail.settings import Site, WebmailSettings

LANGUAGES = {"uk_UA", "en_US", "en_GB", "de_DE"}


def settings(site="", language="", hostname="mail.example.test", locale_file="/nonexistent"):
    return WebmailSettings.from_answers({"site": site, "language": language}, LANGUAGES, hostname, locale_file)


@pytest.mark.parametrize("answer, host, path", [
    ("https://mail.example.org/webmail/", "mail.example.org", "/webmail/"),
    ("https://Mail.Example.org./webmail", "mail.example.org", "/webmail/"),
    ("webmail.example.org", "webmail.example.org", "/"),
    ("https://mail.example.org/a/b", "mail.example.org", "/a/b/"),
    ("https://vm/", "vm", "/"),
])
def test_a_site_is_an_https_address_with_a_path(answer, host, path):
    assert webmail_settings.site(answer) == Site(host, path)


@pytest.mark.parametrize("answer", [
    "http://mail.example.org/", "https://mail.example.org:8443/", "https://user@mail.example.org/",
    "https://mail.example.org/?x=1", "https://mail.example.org/#top", "https://mail.example.org/../etc/",
    "https://mail.example.org/a b/", "https://mail_example.org/", "https://-bad.example.org/", "https:///webmail/",
    "https://mail.example.org/\nx",
])
def test_a_bad_site_is_refused_with_the_question_named(answer):
    with pytest.raises(InvalidAnswer) as err:
        webmail_settings.site(answer)
    assert str(err.value).startswith("mailsetup-webmail/site")
    assert "https://mail.example.org/webmail/" in str(err.value)


def test_empty_answers_follow_the_server_name_and_the_system_language(tmp_path):
    locale = tmp_path / "locale"
    locale.write_text('LANG="uk_UA.UTF-8"\n')
    s = settings(locale_file=str(locale))
    assert s.site.url == "https://mail.example.test/webmail/"
    assert s.language == "uk_UA"
    # What is recorded is the answer as given, so that a new server name is followed.
    assert s.to_answers() == {"site": "", "language": ""}


@pytest.mark.parametrize("lang, expected", [
    ("uk_UA.UTF-8", "uk_UA"), ("uk", "uk_UA"), ("de_AT.UTF-8", "de_DE"), ("C.UTF-8", "en_US"), ("", "en_US"),
    ("en_GB.UTF-8", "en_GB"),
])
def test_the_system_language_in_roundcube_names(tmp_path, lang, expected):
    locale = tmp_path / "locale"
    locale.write_text("LANG=%s\n" % lang)
    assert webmail_settings.system_language(LANGUAGES, str(locale)) == expected


def test_an_unknown_language_is_refused():
    with pytest.raises(InvalidAnswer) as err:
        settings(language="klingon")
    assert str(err.value).startswith("mailsetup-webmail/language") and "uk_UA" in str(err.value)


def site_text(s=None, names=("mail.example.test", "autoconfig.example.test"), ipv6=True):
    return nginx.site_conf(s or settings(), "/etc/ssl/c.pem", "/etc/ssl/k.key", list(names), "/var/lib/w/www",
                           "/etc/mailsetup/webmail/roundcube", ipv6=ipv6, message_size_limit=10240000)


def test_plain_http_only_redirects_and_https_is_modern():
    text = site_text()
    http, https = text.split("listen 443", 1)
    assert "return 301 https://$host$request_uri;" in http and "root" not in http and "fastcgi" not in http
    assert "ssl_protocols TLSv1.2 TLSv1.3;" in https
    # Mozilla intermediate's TLS 1.2 suites (mailsetup/tls_profile.py), the client's choice.
    assert f"ssl_ciphers {tls_profile.CIPHER_LIST};" in https and "ssl_prefer_server_ciphers off;" in https
    assert "Strict-Transport-Security" in https and "ssl_certificate /etc/ssl/c.pem;" in https
    assert "server_name mail.example.test autoconfig.example.test;" in https
    assert "listen [::]:443" in https and "listen [::]:443" not in site_text(ipv6=False)


def test_roundcube_reads_our_settings_after_debians_and_only_its_front_controller_runs():
    text = site_text()
    assert 'RCUBE_CONFIG_PATH "/var/lib/roundcube/config/:/etc/mailsetup/webmail/roundcube/"' in text
    assert "location = /webmail/index.php {" in text and "location ^~ /webmail/ {" in text
    assert "location = / {\n        return 302 /webmail/;" in text
    # at the root of the name, no redirect to itself
    assert "return 302" not in site_text(settings(site="https://webmail.example.test/"))


def test_attachments_fit_into_a_message_postfix_accepts():
    assert nginx.upload_limit(10240000) == 7
    assert nginx.upload_limit(100) == 1
    assert "upload_max_filesize=7M" in site_text()


def test_the_status_reads_the_address_back_from_the_site():
    assert webmail_status.site_url(site_text()) == "https://mail.example.test/webmail/"
    assert webmail_status.site_url(site_text(settings(site="https://w.example.test/"), names=["w.example.test"])) \
        == "https://w.example.test/"
    assert webmail_status.site_url("") is None


def test_roundcube_settings_reach_everything_on_loopback():
    text = roundcube.config_php(settings(language="uk_UA"))
    for line in ("$config['imap_host'] = 'ssl://127.0.0.1:993';", "$config['smtp_host'] = 'ssl://127.0.0.1:465';",
                 "$config['managesieve_host'] = 'tls://127.0.0.1';", "$config['password_driver'] = 'poppassd';",
                 "$config['password_pop_host'] = '127.0.0.1';", "$config['language'] = 'uk_UA';",
                 "$config['use_https'] = true;", "$config['password_confirm_current'] = true;",
                 "$config['managesieve_vacation'] = 1;"):
        assert line in text
    # Debian's file keeps the database and the des_key: we set neither.
    assert "$config['des_key']" not in text and "db_dsnw" not in text


def scratch(tmp_path):
    system = System(etc_dir=str(tmp_path / "etc"), nginx_dir=str(tmp_path / "nginx"),
                    webmail_state_dir=str(tmp_path / "state"), run_services=False)
    os.makedirs(tmp_path / "nginx" / "sites-available")
    os.makedirs(tmp_path / "nginx" / "sites-enabled")
    (tmp_path / "nginx" / "sites-available" / "default").write_text("server {}\n")
    os.symlink("/etc/nginx/sites-available/default", tmp_path / "nginx" / "sites-enabled" / "default")
    return system


def test_our_site_is_enabled_and_the_default_site_disabled_and_undo_puts_them_back(tmp_path):
    from mailsetup.state import StateDir
    system = scratch(tmp_path)
    site = nginx.NginxSite(system, "server {}\n# ours\n")
    current = site.read_current()
    plan = site.plan(None, current)
    assert set(plan) == {"site", "enable", "disable default"}
    state = StateDir(str(tmp_path / "state"))
    site.record_originals(state, plan, current)
    site.apply(plan)
    enabled = tmp_path / "nginx" / "sites-enabled"
    assert sorted(os.listdir(enabled)) == ["mailsetup-webmail"]
    assert os.readlink(enabled / "mailsetup-webmail") == site.available
    assert (tmp_path / "state" / "nginx-default-site.orig").read_text() == "/etc/nginx/sites-available/default"
    assert site.plan(None, site.read_current()) == {}
    site.undo(current)
    assert sorted(os.listdir(enabled)) == ["default"]
    assert os.readlink(enabled / "default") == "/etc/nginx/sites-available/default"


def test_a_default_site_that_is_a_file_of_the_admins_is_left_alone(tmp_path):
    system = scratch(tmp_path)
    default = tmp_path / "nginx" / "sites-enabled" / "default"
    default.unlink()
    default.write_text("server { listen 8080; }\n")
    site = nginx.NginxSite(system, "x\n")
    site.apply(site.plan(None, site.read_current()))
    assert default.read_text() == "server { listen 8080; }\n"


def test_roundcube_settings_file_is_planned_once(tmp_path):
    system = scratch(tmp_path)
    rc = roundcube.RoundcubeConfig(system)
    plan = rc.plan(settings(), rc.read_current())
    rc.apply(plan)
    assert oct(os.stat(rc.path).st_mode & 0o777) == "0o640"
    assert rc.plan(settings(), rc.read_current()) == {}
    assert rc.plan(settings(language="de_DE"), rc.read_current())


def test_roundcubes_own_config_directory_is_named_as_roundcube_names_it(tmp_path):
    """On trixie public_html/index.php may be a link into /usr/share/roundcube."""
    share = tmp_path / "share" / "roundcube"
    (share / "public_html").mkdir(parents=True)
    (share / "public_html" / "index.php").write_text("<?php\n")
    public = tmp_path / "lib" / "roundcube" / "public_html"
    public.mkdir(parents=True)
    os.symlink(share / "public_html" / "index.php", public / "index.php")
    assert nginx.roundcube_config_dir(str(public) + "/") == str(share / "config") + "/"
    assert nginx.roundcube_config_dir(str(tmp_path / "none") + "/") == nginx.ROUNDCUBE_CONFIG_DIR
