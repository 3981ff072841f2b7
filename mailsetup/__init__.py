"""mailsetup: configure a Debian mail server through the package manager."""
