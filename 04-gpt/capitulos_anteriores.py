"""O que os capítulos anteriores a 04-gpt exportaram: o índice do que este capítulo herda.

Cada nome vem do módulo de `llm_do_zero/` do capítulo que o ensina
(ex.: `llm_do_zero/atencao.py` é o 03-atencao).
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
