"""Fixture for procref's editor tests: one deliberate error for pyflakes."""


def greeting(name):
    """Return a friendly greeting for name."""
    return "hello, " + name


print(greeting("procref") + undefined_name)  # deliberate error
