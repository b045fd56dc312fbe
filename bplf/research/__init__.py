"""The analysis and research harness: the one evaluator, the statistics, the ablation and
conditioning experiments, throughput, the peer Glow, the face and fidelity metrics, and the
figures the prose quotes. Built on the core library (``bplf``); the course does not depend on
it the other way round."""
