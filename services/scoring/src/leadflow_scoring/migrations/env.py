from leadflow_kit.migrations import run_env
from leadflow_scoring.tables import metadata

run_env(metadata)
