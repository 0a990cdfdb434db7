from leadflow_console.tables import metadata
from leadflow_kit.migrations import run_env

run_env(metadata)
