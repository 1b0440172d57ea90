pytest_plugins = ["kfd.testing.fixtures"]
