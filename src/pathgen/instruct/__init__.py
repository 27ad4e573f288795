"""Instruction-tuning data and the pathology assistant (the PathGen-LLaVA path).

``pathgen instruct`` turns exported pairs into open conversations and closed multiple-choice
questions (checked, re-asked, rejected with reasons; LLaVA JSON, a Hugging Face dataset, PathMMU
MCQ JSON and a card); ``pathgen assistant train`` builds and trains a LLaVA-style model from a
``pathgen train`` CLIP folder and a causal LLM.
"""
