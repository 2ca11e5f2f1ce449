#!/bin/sh
# m2s-train-bundle DATA NAME [PRETRAIN OPTIONS...]
#
# Train M2S on a dataset and export it as a model bundle the service can load, in one go (the default
# command of docker-compose.yml's `trainer`). The four steps of docs/guides/reproduce-paper.md "Training and evaluating M2S":
#   m2s-train pretrain DATA --out RUN [PRETRAIN OPTIONS]   # contrastive pretraining on one split
#   m2s-train finetune RUN                                 # a classifier per modality, epochs chosen on validation
#   m2s-train evaluate RUN                                 # the A->B matrix on the test trials
#   m2s-train export RUN --name NAME --repository REPO     # the next version of NAME in REPO
# DATA is a dataset folder or file (kind detected; add --kind to the options to force it); RUN is
# $M2S_RUNS/NAME. PRETRAIN OPTIONS are `m2s-train pretrain` options, e.g. --subject 3 --epochs 100.
# Environment: M2S_MODEL_REPOSITORY (required: where the bundle goes), M2S_RUNS (default ./runs),
# M2S_EXPORT_MODALITIES (comma-separated modalities to export; default all; SEED's released eye
# features, for one, have no FeatureSpec and cannot be exported: use eeg).
# Exit status: 2 for a usage error, else that of the first step that failed.
set -eu

usage() {
    echo "usage: m2s-train-bundle DATA NAME [PRETRAIN OPTIONS...]  (see the comment at the top of $0)" >&2
    exit 2
}
[ "$#" -ge 2 ] || usage
case "$1" in -*) usage ;; esac
data=$1
name=$2
shift 2
repository=${M2S_MODEL_REPOSITORY:-}
if [ -z "$repository" ]; then
    echo "m2s-train-bundle: error: set M2S_MODEL_REPOSITORY to the model repository the bundle goes into." >&2
    exit 2
fi
run="${M2S_RUNS:-runs}/$name"

echo "m2s-train-bundle: $data -> run $run -> bundle $name in $repository" >&2
m2s-train pretrain "$data" --out "$run" "$@"
m2s-train finetune "$run"
m2s-train evaluate "$run"
if [ -n "${M2S_EXPORT_MODALITIES:-}" ]; then
    m2s-train export "$run" --name "$name" --repository "$repository" --modalities "$M2S_EXPORT_MODALITIES"
else
    m2s-train export "$run" --name "$name" --repository "$repository"
fi
