"""minidl.models: the model zoo (filled in by the model-zoo issue)."""
