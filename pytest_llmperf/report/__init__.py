"""The report: the JSON document and its schema, and the HTML page (also pytest-html's rows).

It may import ``judge``, ``observe``, ``client``, ``errors``, ``stats`` and ``files``; never
``plugin``.
"""
