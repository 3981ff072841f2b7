from setuptools import find_packages, setup

setup(
    name="mailsetup",
    version="0.4.0",
    description="Configure a Debian mail server through debconf",
    packages=find_packages(include=["mailsetup", "mailsetup.*"]),
    scripts=["bin/mailsetup"],
)
