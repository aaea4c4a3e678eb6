"""The MLflow Ops tab: experiments and runs, metric history, the best run, TensorBoard import."""
