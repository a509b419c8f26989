"""Adversarial robustness: attacks, adversarial training, robust accuracy. Importing registers them."""

from lossbench.adversarial.attacks import ATTACKS, Attack, PixelModel, pgd, project, random_start
from lossbench.adversarial.evaluation import RobustEvaluation
from lossbench.adversarial.training import ADVERSARIAL, AdvBatch, AdversarialMethod

__all__ = ["ADVERSARIAL", "ATTACKS", "AdvBatch", "AdversarialMethod", "Attack", "PixelModel",
           "RobustEvaluation", "pgd", "project", "random_start"]
