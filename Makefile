# mailsetup: build, local apt repository, install, tests.
#
#   make install   build the packages and install mailsetup on this machine from
#                  build/repo through apt (its dependencies bring Postfix, which
#                  mailsetup configures); installs only the build dependencies
#   make lint      flake8 over the Python code (settings in .flake8)
#   make test      flake8, then unit + end-to-end tests, and lintian on the built packages
#                  (on bookworm and trixie; MAILSETUP_TEST_SUITES=bookworm for one;
#                  see tests/e2e/conftest.py for the other settings); installs the
#                  build and test dependencies first
#   make build-deps  install what dpkg-buildpackage needs (the unit tests run at
#                  build time, so Postfix too, as for test-deps)
#   make test-deps   install what the tests need (lintian, piuparts, autopkgtest,
#                  mmdebstrap, systemd-nspawn, pytest, flake8, ...; Postfix for the unit tests)
#   make deps      both of the above
#   make build     build the .debs in build/ (from a copy of the tree in build/src;
#                  runs the unit tests, DEB_BUILD_OPTIONS=nocheck skips them)
#   make repo      flat apt repository of the built .debs in build/repo
#   make repo-previous  the previous release (second entry of debian/changelog,
#                  built from its git tag) as a repository in build/repo-previous
#   make piuparts  piuparts install/purge and upgrade-from-previous/purge
#   make autopkgtest    debian/tests (DEP-8), as installed, in a test root
#                  (both: bookworm and trixie unless MAILSETUP_TEST_SUITES says)
#   make pot       regenerate po/mailsetup.pot from the Python sources listed in
#                  po/POTFILES and merge it into the translations po/*.po
#   make clean
#
# Run as root (the *-deps targets, install and the end-to-end tests need it).

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c

# Debian's tools only: a python3 (or python3.11) from pyenv, a virtualenv or
# /usr/local earlier on PATH has none of the Debian modules (debconf,
# pytest), and pybuild would build with it.
export PATH := /usr/sbin:/usr/bin:/sbin:/bin
PYTHON := /usr/bin/python3
PYTEST := $(PYTHON) -m pytest

BUILD := $(CURDIR)/build
REPO := $(BUILD)/repo
APT_LIST := /etc/apt/sources.list.d/mailsetup-local.list

# What dpkg-buildpackage needs (and apt-ftparchive, from apt-utils, for the
# repository); the Build-Depends of debian/control come on top (with those
# for the unit tests at build time: pytest, Postfix).
BUILD_DEPS := build-essential dpkg-dev debhelper dh-python fakeroot gettext po-debconf \
	python3-all python3-setuptools apt-utils

# What the tests need on this machine: the end-to-end beds are mmdebstrap roots
# booted with systemd-nspawn (systemd-container); git for repo-previous;
# headless Chromium driven by Selenium for the webmail (tests/e2e/browser.py).
# postfix: the unit tests run the real postconf/postmap/postalias on scratch
# directories (postfix-sqlite: the mailbox store's SQLite tables through
# postmap -q). It is installed as "No configuration" only here, on a test
# machine, and only when it is missing (a configured Postfix is left alone).
# php-cli: the webmail's autodiscover script is run by PHP in a unit test.
# python3-psycopg2: the PostgreSQL store is imported (and its files written) by unit tests.
TEST_DEPS := lintian piuparts autopkgtest mmdebstrap zstd systemd-container \
	python3-pytest python3-pytest-xdist python3-pexpect python3-debconf python3-debian \
	iproute2 util-linux debian-archive-keyring ca-certificates git flake8 \
	chromium chromium-driver python3-selenium \
	postfix postfix-sqlite php-cli python3-psycopg2

# What `make lint` checks with flake8 (.flake8 has the settings).
LINT_FILES := mailsetup tests bench bin/mailsetup setup.py

# Installs the packages of $(1) that are not installed yet, without recommends.
define apt_install
	missing=$$({ dpkg-query -W -f='$${db:Status-Abbrev} $${binary:Package}\n' $(1) 2>/dev/null || true; } \
		| awk '$$1 == "ii" { print $$2 }' | sed 's/:.*//' | sort -u \
		| comm -13 - <(printf '%s\n' $(1) | sort -u)); \
	if [ -n "$$missing" ]; then \
		echo "Installing:" $$missing; \
		apt-get update -q; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi
endef

require_root = if [ "$$(id -u)" != 0 ]; then echo "make $@: run as root" >&2; exit 1; fi

# Postfix, when apt is about to install it (the unit tests need it), comes as
# "No configuration": this is a build or test machine, not a mail server. A
# Postfix already installed is left alone.
define postfix_unconfigured
	if ! dpkg-query -W -f='$${db:Status-Abbrev}' postfix 2>/dev/null | grep -q '^ii'; then \
		echo 'postfix postfix/main_mailer_type select No configuration' | debconf-set-selections; \
	fi
endef

.PHONY: all deps build-deps test-deps build repo repo-previous install lint test test-unit test-e2e piuparts \
	autopkgtest lintian pot clean

all: build

# Each target's prerequisites are steps in order (deps before build).
.NOTPARALLEL:

build-deps:
	@$(require_root)
	@$(call apt_install,$(BUILD_DEPS))
	@if [ -f debian/control ] && ! dpkg-checkbuilddeps >/dev/null 2>&1; then \
		echo "Installing the build dependencies of debian/control"; \
		$(postfix_unconfigured); \
		apt-get update -q; \
		DEBIAN_FRONTEND=noninteractive apt-get build-dep -y -q --no-install-recommends ./; \
	fi

test-deps:
	@$(require_root)
	@$(postfix_unconfigured)
	@$(call apt_install,$(TEST_DEPS))

# Both, for CI and old habits.
deps: build-deps test-deps

build:
	rm -rf $(BUILD)/src
	rm -f $(BUILD)/*.deb $(BUILD)/*.changes $(BUILD)/*.buildinfo
	mkdir -p $(BUILD)/src
	tar --exclude=./build --exclude=./.git --exclude=./.pytest_cache \
		--exclude='__pycache__' -cf - . | tar -xf - -C $(BUILD)/src
	cd $(BUILD)/src && dpkg-buildpackage -us -uc -b -Jauto
	@ls -l $(BUILD)/*.deb

repo: build
	rm -rf $(REPO)
	mkdir -p $(REPO)
	cp $(BUILD)/*.deb $(REPO)/
	cd $(REPO) && apt-ftparchive packages . > Packages
	gzip -9nk $(REPO)/Packages
	cd $(REPO) && apt-ftparchive \
		-o APT::FTPArchive::Release::Origin=mailsetup \
		-o APT::FTPArchive::Release::Label=mailsetup \
		-o APT::FTPArchive::Release::Suite=local \
		-o APT::FTPArchive::Release::Codename=local \
		release . > $(BUILD)/Release.tmp
	mv $(BUILD)/Release.tmp $(REPO)/Release
	@echo "Repository: deb [trusted=yes] file:$(REPO) ./"

# The previous release, for the upgrade tests; its .debs are cached by commit
# id (in $$MAILSETUP_TEST_CACHE/previous, default /var/cache/mailsetup-tests).
repo-previous:
	tests/release/build-previous $(BUILD)/repo-previous

# Interactive (the debconf dialog) when run from a terminal, noninteractive
# otherwise. No test tools: apt brings Postfix as a dependency of mailsetup.
install: build-deps repo
	@$(require_root)
	echo "deb [trusted=yes] file:$(REPO) ./" > $(APT_LIST)
	apt-get update -q
	if [ -t 0 ]; then \
		apt-get install -y --reinstall mailsetup; \
	else \
		DEBIAN_FRONTEND=noninteractive apt-get install -y --reinstall mailsetup; \
	fi

lint:
	flake8 $(LINT_FILES)

# flake8 first (a finding stops here), then the unit and end-to-end tests and
# lintian; fails if any of them failed.
# (No $(MAKE) in the recipe: make -n would run that line, tests included.)
# Test beds run side by side, TEST_JOBS at a time; the steps of one test
# class stay together, in order (--dist loadscope).
TEST_JOBS ?= 2
PYTEST_JOBS = -n $(TEST_JOBS) --dist loadscope

test: build-deps test-deps lint repo repo-previous
	rc=0; \
	$(PYTEST) -v $(PYTEST_JOBS) tests/ || rc=$$?; \
	$(LINTIAN) || rc=1; \
	exit $$rc

test-unit:
	$(PYTEST) -v tests/unit

test-e2e: build-deps test-deps repo
	$(PYTEST) -v $(PYTEST_JOBS) tests/e2e

piuparts: build-deps test-deps repo repo-previous
	$(PYTEST) -v tests/e2e/test_piuparts.py tests/e2e/test_purge_clean.py

autopkgtest: build-deps test-deps repo
	$(PYTEST) -v tests/e2e/test_autopkgtest.py

LINTIAN = lintian --fail-on error,warning --tag-display-limit 0 $(BUILD)/*.changes

lintian:
	$(LINTIAN)

# Messages of the Python code (gettext domain "mailsetup"); the debconf
# templates have their own catalogues in debian/po (debconf-updatepo).
POT := po/mailsetup.pot
XGETTEXT := xgettext --language=Python --keyword=_ --from-code=UTF-8 --add-comments=Translators

pot:
	$(XGETTEXT) --package-name=mailsetup \
		--package-version="$$(dpkg-parsechangelog -S Version)" \
		--msgid-bugs-address=mailsetup@example.org \
		--copyright-holder="mailsetup developers" \
		--files-from=po/POTFILES --output=$(POT)
	for po in po/*.po; do \
		[ -e "$$po" ] || continue; \
		msgmerge --quiet --update --backup=none --previous "$$po" $(POT); \
		msgfmt --check --statistics --output-file=/dev/null "$$po"; \
	done

clean:
	rm -rf $(BUILD) .pybuild .pytest_cache mailsetup.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
