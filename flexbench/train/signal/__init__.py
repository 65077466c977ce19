"""Reward signal: where training-time gains come from.

``gains`` (observed labels, critic-imputed or KNN-imputed gains per candidate),
``critic`` and ``critic_data`` (the uncertainty-aware critic: model, beta-NLL
training, its examples), ``knn`` (User-/Item-KNN collaborative imputation).
"""
