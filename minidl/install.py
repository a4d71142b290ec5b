"""How to install an optional extra, said the same way by every message: minidl is
installed from a clone (``pip install -e .``), so its extras are installed there too."""


def extra_hint(extra):
    """The command that installs the optional extra ``extra`` (setup.py's extras_require)."""
    return f'pip install -e ".[{extra}]" in the minidl clone'
