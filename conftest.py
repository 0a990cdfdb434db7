# Real Kafka and PostgreSQL for integration and e2e tests (the `infra` fixture).
pytest_plugins = ["leadflow_stack.pytest_plugin"]
