"""The sampling studio: provenance of answers, their token traces, and the next-token view.

Modules: ``trace`` (what is stored per token), ``chain_view`` (the sampler stages, numpy),
``store`` (tables), ``provenance`` (hashes, seed, version), ``service`` (what the page calls).
Nothing is imported here, so the engine's import stays light.
"""
