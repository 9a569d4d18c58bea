"""Benchmarks shipped with the relay (`relay bench ...`): contenders measured side by side in one run."""
