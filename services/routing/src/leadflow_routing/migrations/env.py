from leadflow_kit.migrations import run_env
from leadflow_routing.tables import metadata

run_env(metadata)
