"""The pytest plugin: hooks (the pytest11 entry point, ``plugin.hooks``), fixtures, markers,
settings.

It sits on top and may import everything else; nothing else imports it.
"""
