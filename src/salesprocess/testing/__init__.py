"""The testing kit shipped with salesprocess: Hypothesis strategies, a stateful machine that drives
deals through a process, store and adapter conformance suites, and an opt-in pytest plugin."""
