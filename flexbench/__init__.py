"""FlexBench: benchmark suite and leaderboard for need-specific LLM ranking (FlexRec, arXiv 2603.11901)."""

__version__ = "0.1.0"
