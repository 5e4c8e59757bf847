"""The client: the sync and async faces, the call core, wire formats, cache, tiers, timeouts, hosts.

It may import only ``errors``, ``stats``, ``files`` and ``observe.point`` (to tag its own calls);
never ``plugin``, ``report``, ``judge`` or ``emulator``.
"""
