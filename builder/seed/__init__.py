"""Per-site seeds: cloud-init NoCloud ISO, its rendered files and the engine-setup answer file."""
