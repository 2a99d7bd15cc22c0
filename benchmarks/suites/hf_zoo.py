"""Hugging Face suite: one tiny config per family (random weights, nothing downloaded).

Task-head models are used (sequence classification, causal LM, image classification, ...) so
the hidden size is not itself a model output; each case also checks that the pruned model
survives ``save_pretrained`` / ``from_pretrained`` with the same outputs.
"""

from __future__ import annotations

from typing import Any

import torch
import transformers as hf

from benchmarks.suites import Case

TEXT = dict(vocab_size=128, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
            max_position_embeddings=64)
DECODER = dict(TEXT, num_key_value_heads=2)
SEQ = 8


def _ids(batch: int = 1, seq: int = SEQ) -> torch.Tensor:
    return torch.randint(3, 100, (batch, seq))


def _image(size: int = 32) -> torch.Tensor:
    return torch.rand(1, 3, size, size)


def _text_cases() -> dict[str, tuple[Any, Any, dict]]:
    return {
        "bert": (hf.BertConfig, hf.BertForSequenceClassification, TEXT),
        "roberta": (hf.RobertaConfig, hf.RobertaForSequenceClassification, dict(TEXT, pad_token_id=1)),
        "distilbert": (hf.DistilBertConfig, hf.DistilBertForSequenceClassification,
                       dict(vocab_size=128, dim=64, n_layers=2, n_heads=4, hidden_dim=128,
                            max_position_embeddings=64)),
        "albert": (hf.AlbertConfig, hf.AlbertForSequenceClassification, dict(TEXT, embedding_size=32)),
        "gpt2": (hf.GPT2Config, hf.GPT2LMHeadModel, dict(vocab_size=128, n_embd=64, n_layer=2, n_head=4,
                                                        n_positions=64)),
        "gpt_neox": (hf.GPTNeoXConfig, hf.GPTNeoXForCausalLM, TEXT),
        "opt": (hf.OPTConfig, hf.OPTForCausalLM, dict(TEXT, ffn_dim=128, word_embed_proj_dim=64)),
        "llama": (hf.LlamaConfig, hf.LlamaForCausalLM, DECODER),
        "mistral": (hf.MistralConfig, hf.MistralForCausalLM, dict(DECODER, sliding_window=None)),
        "qwen2": (hf.Qwen2Config, hf.Qwen2ForCausalLM, DECODER),
        "phi3": (hf.Phi3Config, hf.Phi3ForCausalLM, dict(DECODER, pad_token_id=0)),
        "gemma": (hf.GemmaConfig, hf.GemmaForCausalLM, dict(DECODER, head_dim=16)),
    }


def _seq2seq_cases() -> dict[str, tuple[Any, Any, dict]]:
    return {
        "t5": (hf.T5Config, hf.T5ForConditionalGeneration,
               dict(vocab_size=128, d_model=64, d_kv=16, d_ff=128, num_layers=2, num_heads=4,
                    decoder_start_token_id=0)),
        "bart": (hf.BartConfig, hf.BartForConditionalGeneration,
                 dict(vocab_size=128, d_model=64, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
                      decoder_attention_heads=4, encoder_ffn_dim=128, decoder_ffn_dim=128,
                      max_position_embeddings=64)),
    }


def _vision_cases() -> dict[str, tuple[Any, Any, dict, Any]]:
    vit = dict(image_size=32, patch_size=8, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
               intermediate_size=128)
    return {
        "vit": (hf.ViTConfig, hf.ViTForImageClassification, vit, lambda: {"pixel_values": _image()}),
        "swin": (hf.SwinConfig, hf.SwinForImageClassification,
                 dict(image_size=32, patch_size=2, embed_dim=16, depths=[1, 1], num_heads=[2, 4], window_size=4),
                 lambda: {"pixel_values": _image()}),
        "clip": (hf.CLIPConfig, hf.CLIPModel,
                 dict(text_config=dict(vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                       num_attention_heads=4, max_position_embeddings=16),
                      vision_config=dict(image_size=32, patch_size=8, hidden_size=64, intermediate_size=128,
                                         num_hidden_layers=2, num_attention_heads=4), projection_dim=32),
                 lambda: {"input_ids": _ids(2), "pixel_values": _image()}),
        "whisper": (hf.WhisperConfig, hf.WhisperForConditionalGeneration,
                    dict(vocab_size=128, d_model=64, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
                         decoder_attention_heads=4, encoder_ffn_dim=128, decoder_ffn_dim=128, num_mel_bins=16,
                         max_source_positions=16, max_target_positions=32, decoder_start_token_id=1,
                         pad_token_id=0, bos_token_id=1, eos_token_id=2, suppress_tokens=[], begin_suppress_tokens=[]),
                    lambda: {"input_features": torch.rand(1, 16, 32), "decoder_input_ids": _ids()}),
    }


def _builder(config_cls, model_cls, config: dict, inputs):
    def build():
        cfg = config_cls(**config)
        cfg._attn_implementation = "eager"
        return model_cls(cfg), inputs()
    return build


def cases() -> list[Case]:
    """One case per family: text encoders, decoders (LLMs), seq2seq, vision and speech."""
    found = []
    for name, (config_cls, model_cls, config) in _text_cases().items():
        found.append(Case(name, _builder(config_cls, model_cls, config, lambda: {"input_ids": _ids()}),
                          "text", roundtrip=True))
    for name, (config_cls, model_cls, config) in _seq2seq_cases().items():
        inputs = lambda: {"input_ids": _ids(), "decoder_input_ids": _ids()}  # noqa: E731
        found.append(Case(name, _builder(config_cls, model_cls, config, inputs), "seq2seq", roundtrip=True))
    for name, (config_cls, model_cls, config, inputs) in _vision_cases().items():
        found.append(Case(name, _builder(config_cls, model_cls, config, inputs), "vision/speech", roundtrip=True))
    return found
