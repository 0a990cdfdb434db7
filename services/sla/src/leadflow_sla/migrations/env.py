from leadflow_kit.migrations import run_env
from leadflow_sla.tables import metadata

run_env(metadata)
