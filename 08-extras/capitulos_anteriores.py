"""O que os capítulos anteriores a 08-extras exportaram: o índice do que este capítulo herda.

Cada nome vem do módulo de `llm_do_zero/` do capítulo que o ensina
(ex.: `llm_do_zero/instrucoes.py` é o 07-instrucoes).
ARQUIVO GERADO por `python ferramentas/exportar.py`. Não edite à mão.
"""
import sys
from pathlib import Path

# A raiz do repositório (onde está o pacote) vale mais que uma cópia instalada: rode daqui, do Colab
# ou de um script da pasta (torchrun), é sempre o código deste checkout.
_RAIZ = str(Path(__file__).resolve().parent.parent)
if _RAIZ not in sys.path:
    sys.path.insert(0, _RAIZ)

from llm_do_zero.oficina import (
    amp_settings, artifacts_dir, cache_dir, COMPLETO_MIN_GPU_GB, DATA_FILES, describe_device, download_file,
    DownloadError, free_gpu_memory, get_data_file, get_device, get_mode, gpu_peak_memory, mode_settings,
    MODOS, OFICINA_CHECKS, progress_bar, project_root, save_results, set_seed, sha256_of, SMOKE_LIMITS,
    SMOKE_SEEDS, smoke_test, synchronize,
)
from llm_do_zero.estatistica import ESTATISTICA_CHECKS, load_text, MACHADO_BOOKS, perplexity, wilson_interval
from llm_do_zero.tokens import (
    BPETokenizer, BPETokenizerSimple, cooccurrence_counts, course_bpe, course_tokenizer, COURSE_VOCAB_SIZE,
    create_dataloader, gpt2_bytes_to_unicode, gpt2_pretokenizer, GPT2_SPLIT_PATTERN, GPTDataset,
    HELD_OUT_BOOKS, merge_pair, pad_batch, ppmi, sinusoidal_position_encoding, split_special, TOKENS_CHECKS,
    train_bpe, train_bpe_naive,
)
from llm_do_zero.atencao import ATENCAO_CHECKS, attention_weights, copy_task_batch, MultiHeadAttention
from llm_do_zero.gpt import (
    apply_rope, FeedForward, GELU, generate_text_simple, GPT2_BUFFERS, GPT_CHECKS, GPT_CONFIG_124M, GPTModel,
    GroupedQueryAttention, init_gpt2_weights, LayerNorm, load_weights_into_gpt, RMSNorm, rope_angles, SwiGLU,
    text_to_token_ids, token_ids_to_text, TransformerBlock,
)
from llm_do_zero.pretreino import (
    autocast_context, base_checkpoint_path, BASE_SOURCES, batch_size_of, best_bigram_k, BIGRAM_K_CANDIDATES,
    bigram_loss, bigram_loss_on_windows, bigram_pair_losses, bigram_token_losses, bits_per_char,
    calc_loss_batch, calc_loss_loader, course_base_dir, COURSE_BASE_FILE, COURSE_BASE_SETTINGS,
    create_pretraining_loaders, download_gpt2_weights, evaluate_model, full_eval_steps, generate,
    generate_and_print_sample, gpt2_config, gpt2_expected_shapes, GPT2_SIZES, GPT2_WEIGHTS_URL,
    load_base_model, load_checkpoint, load_course_base_model, load_gpt2, load_pretraining_texts,
    pretrain_base_model, PRETRAIN_CHECKS, PRETRAIN_SETTINGS, save_checkpoint, save_course_base_model,
    tokenizer_from_state, tokenizer_state, TRAIN_BOOKS, train_loop, train_model_simple, unigram_loss,
    warmup_cosine_lr,
)
from llm_do_zero.finetuning import (
    add_classification_head, calc_accuracy_loader, calc_loss_batch_classifier, calc_loss_loader_classifier,
    classifier_logits, classifier_param_groups, classify_text, embedding_bag_device, evaluate_classifier,
    FAKEBR_LABELS, FAKEBR_PAIRS, FAKEBR_ZIP, FakeNewsDataset, FINETUNE_CHECKS, LinearWithLoRA, load_fakebr,
    LoRALayer, normalize_examples, normalize_spaces, POOLINGS, replace_linear_with_lora, sample_pairs,
    split_by_pair, train_classifier_simple,
)
from llm_do_zero.instrucoes import (
    answer_options, build_prompt, calc_loss_batch_masked, chance_score, choose_options,
    create_instruction_dataloader, custom_collate_fn, evaluate_instructions, exact_match, extract_response,
    FACT_TASKS, finetune_instructions, format_input, generate_response, instruction_checkpoint_path,
    INSTRUCTION_CHECKS, instruction_data_path, INSTRUCTION_SETTINGS, InstructionDataset,
    load_instruction_base, load_instruction_data, load_instruction_model, load_instruction_splits,
    load_new_template_test, lookup_results, majority_results, mcnemar_test, NEW_TEMPLATES_SPLIT,
    normalize_answer, OPEN_TASK, option_logprobs, pick_shots, PREAMBULO, prompt_format, prompt_words,
    RESPONSE_HEADER, score_by_task, stable_then_cosine_lr, tokenize_example, train_instruction_model,
)
