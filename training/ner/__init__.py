"""NER training and NLP evaluation (wrapped by ``medsight train ner`` / ``medsight eval``)."""

from training.ner.evaluate import evaluate_classify, evaluate_ner
from training.ner.train import train_ner

__all__ = ["evaluate_classify", "evaluate_ner", "train_ner"]
