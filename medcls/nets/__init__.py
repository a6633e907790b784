"""Networks: plain ``torch.nn.Module`` s built from the tasks they predict, no Lightning.

Every net takes the task mapping (name -> number of classes) as its first argument and returns a dict
of logits, one entry per head (a single-task net may return a plain tensor).
"""

from medcls.nets.timm import TimmNet
from medcls.nets.tutorial import TutorialNet

__all__ = ["TimmNet", "TutorialNet"]
