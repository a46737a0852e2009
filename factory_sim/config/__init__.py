"""config: the YAML schemas (pydantic) and their typed loaders.

Every schema is declared with `defer_build=True`: pydantic builds a model's validator when it
first validates, not when its module is imported, so start-up does not build the validators of
the schemas a command never reads on their own (a nested schema is built inside its parent's).
"""
