"""Evaluate a trained model on a target dataset (mAP, CMC, optional re-ranking)."""
from dualref.cli import drive
from dualref.configs import TestConfig
from dualref.pipeline.test import run_test

if __name__ == "__main__":
    drive(TestConfig, "Testing the model", run_test, log_name="log_test.txt",
          options_name="options_test.json")
