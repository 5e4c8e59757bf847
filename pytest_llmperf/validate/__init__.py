"""``llmperf validate``: the bundled validation scenarios, run through our own plugin.

The scenarios are a pytest suite that ships inside the package (``validate/suite/``): the
*architecture* of the target (it answers, its version, each tier's model, the API shapes),
its *functionality* (generate, chat, streaming, embeddings, JSON, tool calls) and its
*performance* (each tier cold and warm, the cache, concurrency, timeouts, fallback,
balancing), each scenario a test with its budget. :mod:`~pytest_llmperf.validate.command`
starts the target (the embedded emulator unless URLs are given), runs the suite in a
subprocess and writes what it found; :mod:`~pytest_llmperf.validate.scenarios` turns the
tests' reports into the report's ``scenarios`` and ``optimizations`` sections.

It sits on top of everything: it may import any part of the package (the suite runs through
the plugin and the client, against the emulator, into the report); only ``cli`` imports it.
"""
