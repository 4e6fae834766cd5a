"""Stage 1: pre-train on the labelled source, report direct transfer to the target."""
from dualref.cli import drive
from dualref.configs import PretrainConfig
from dualref.pipeline.pretrain import evaluate_pretrained, pretrain


def main(cfg: PretrainConfig) -> dict:
    return evaluate_pretrained(cfg) if cfg.evaluate else pretrain(cfg)


if __name__ == "__main__":
    drive(PretrainConfig, "Pre-training on the source domain", main,
          log_name=lambda cfg: "log_test.txt" if cfg.evaluate else "log.txt")
