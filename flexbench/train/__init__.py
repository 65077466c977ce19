"""FlexRec training: rewards, advantages, uncertainty weights, the critic, CF imputers and the GRPO loop.

The reward and advantage computations are plain, separately tested functions
(``rewards``, ``advantages``, ``token_advantages``, ``uncertainty``); the
training-time gains come from ``gains`` (observed labels, the critic of
``critic`` or the KNN imputers of ``knn``). Nothing is imported here: import the
submodule you need.
"""
