"""Every nbops import of the reference notebooks as nbops 0.1 shipped them (and as
`nbops init` copied them into users' projects). tests/test_compat.py runs this file."""

# notebooks/evaluate.ipynb
from nbops import plots
# notebooks/evaluate.ipynb
from nbops.artifacts import load_model, read_json, write_json
# notebooks/evaluate.ipynb
from nbops.evaluation import (
    DEFAULT_PRIMARY,
    importance_scoring,
    importance_table,
    pick_best,
    score_model,
    slice_table,
)
# notebooks/evaluate.ipynb
from nbops.split import read_training_rows
# notebooks/evaluate.ipynb
from nbops.target import TargetInfo
# notebooks/evaluate.ipynb
from nbops.drift import profile as drift_profile
# notebooks/gate.ipynb
from nbops import plots
# notebooks/gate.ipynb
from nbops.artifacts import load_model, read_json, write_json
# notebooks/gate.ipynb
from nbops.evaluation import DEFAULT_PRIMARY
# notebooks/gate.ipynb
from nbops.gate import GatePolicy, decide, paired_bootstrap
# notebooks/gate.ipynb
from nbops.release import find_champion, gate_scores, model_card, release_requirements, slice_drops
# notebooks/gate.ipynb
from nbops.registry import save_release_model
# notebooks/gate.ipynb
from nbops.target import TargetInfo
# notebooks/ingest.ipynb
from nbops.plots import missing_plot
# notebooks/ingest.ipynb
from nbops.snapshot import write_snapshot
# notebooks/ingest.ipynb
from nbops.tables import column_summary
# notebooks/ingest.ipynb
from nbops.target import check_task, read_target
# notebooks/monitor/alert.ipynb
from nbops.artifacts import read_json, write_json
# notebooks/monitor/alert.ipynb
from nbops.drift import DriftPolicy, DriftReport, ColumnDrift
# notebooks/monitor/alert.ipynb
from nbops.monitor import MonitorPolicy, breaches
# notebooks/monitor/drift.ipynb
from nbops import plots
# notebooks/monitor/drift.ipynb
from nbops.artifacts import read_json, write_json
# notebooks/monitor/drift.ipynb
from nbops.drift import DriftPolicy, Profile, compare
# notebooks/monitor/performance.ipynb
from nbops import plots
# notebooks/monitor/performance.ipynb
from nbops.artifacts import read_json, write_json
# notebooks/monitor/performance.ipynb
from nbops.monitor import live_metrics, metric_interval
# notebooks/monitor/window.ipynb
from nbops import plots
# notebooks/monitor/window.ipynb
from nbops.artifacts import write_json
# notebooks/monitor/window.ipynb
from nbops.watch import (
    default_log_url,
    load_batch,
    load_log_window,
    project_root_from_env,
    serving_reference,
    since_from,
)
# notebooks/split.ipynb
from nbops.artifacts import write_json
# notebooks/split.ipynb
from nbops.roles import infer_roles, roles_to_json
# notebooks/split.ipynb
from nbops.split import read_training_rows, split_table
# notebooks/train.ipynb
from nbops.artifacts import read_json, save_model, write_json
# notebooks/train.ipynb
from nbops.models import describe, make_model
# notebooks/train.ipynb
from nbops.roles import roles_from_json
# notebooks/train.ipynb
from nbops.split import read_training_rows
# notebooks/train.ipynb
from nbops.target import TargetInfo
# notebooks/validate.ipynb
from nbops.artifacts import write_json
# notebooks/validate.ipynb
from nbops.schema import load_schema, validate_file
# notebooks/validate.ipynb
from nbops.tables import row_count
