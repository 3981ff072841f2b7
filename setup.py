from setuptools import setup

setup(
    name="mailsetup",
    version="0.3.0",
    description="Configure a Debian mail server through debconf",
    packages=["mailsetup", "mailsetup.components", "mailsetup.mailboxes"],
    scripts=["bin/mailsetup"],
)
