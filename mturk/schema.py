"""The ``runs/study/trials.csv`` and ``runs/study/labels.csv`` contracts (see docs/CONTRACTS.md)."""

TRIALS_COLUMNS = [
    "trial_id", "batch_id", "ref_id", "ref_path", "a_id", "a_path", "b_id", "b_path",
    "a_codec", "b_codec", "a_bpp", "b_bpp", "target_bpp", "left", "kind", "expected", "repeat_of",
]
TRIALS_ID = "trial_id"

LABELS_COLUMNS = [
    "trial_id", "ref_id", "ref_path", "a_id", "a_path", "b_id", "b_path",
    "p_b", "n", "a_codec", "b_codec", "a_bpp", "b_bpp",
]
LABELS_ID = "trial_id"

# written by perceptual_metric.predict, read by mturk.active.acquire (the metric's view of each
# pair)
PREDICTIONS_COLUMNS = ["trial_id", "a_id", "b_id", "d_a", "d_b", "p_b"]
PREDICTIONS_ID = "trial_id"

#: ``runs/study/mos.csv`` (``mturk.mos``): one row per rated stimulus of an ACR or DSIS study
MOS_COLUMNS = [
    "stimulus_id", "ref_id", "ref_path", "path", "codec", "bpp", "target_bpp", "design",
    "hidden_ref", "n", "mos", "mos_ci", "dmos", "dmos_ci", "sureal", "sureal_ci",
]
MOS_ID = "stimulus_id"
