"""Policy training: the FlexRec loop and every method of the paper's tables.

Layout (nothing is imported here: import the module you need)::

    config.py      TrainConfig: every option, validated; presets/ hold named option sets
    methods.py     METHODS: the one table of trained methods (MethodSpec rows)
    run.py         train_policy: config + data + gains + model + engine -> PolicyTrainer
    loop.py        PolicyTrainer: rollouts -> credit -> PPO-clip update -> sync, checkpoints
    memory.py      the memory plan: per-GPU memory from the model's config (no weights)
    preflight.py   the plan before training (refuse what cannot fit) and ``--dry-run``
    distributed.py accelerator, FSDP2 sharding, gathered weights, full state dicts, value-head averaging
    tasks.py       the training prompts (instance, need, gains) in a seeded order
    validation.py  validation NDCG during training
    checkpoint.py  resumable checkpoints and the saved policy
    curves.py      metrics.jsonl, curve plots, progress bar
    policy_ranker.py  a trained checkpoint as a Ranker
    signal/        where training-time gains come from (labels, critic, KNN)
    credit/        rewards, group-relative (GRPO) advantages, uncertainty weights, token mapping
    optim/         forward pass, policy loss, PPO value head/GAE, SFT
    rollout/       rollout sampling and crediting, generation engines and weight sync
"""
