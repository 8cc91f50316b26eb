"""Código exportado pelos capítulos anteriores a 08-extras (00-oficina a 07-instrucoes).

ARQUIVO GERADO por `python ferramentas/exportar.py` a partir das células `# exportar`
dos notebooks. Não edite à mão: mude o notebook do capítulo e gere de novo.
"""
import os
import random
import sys
import unicodedata
import numpy as np
import torch
import hashlib
import json
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable
import math
import re
from functools import lru_cache
import heapq
from collections import Counter, defaultdict
import tiktoken
from torch.utils.data import DataLoader, Dataset
from torch import nn
from tqdm.auto import tqdm
import zipfile
from torch.utils.data import Dataset
from functools import partial
import string


# ======================================================================
# Capítulo 00-oficina
# ======================================================================

MODOS = ("rapido", "completo")


def get_mode() -> str:
    """Devolve o modo do curso: 'rapido' (CPU, minutos) ou 'completo' (GPU, tamanho real).

    Lê a variável de ambiente LLM_MODO; sem ela, escolhe 'completo' se houver GPU CUDA e 'rapido' caso contrário.
    """
    bruto = os.environ.get("LLM_MODO", "").strip().lower()
    if not bruto:
        return "completo" if torch.cuda.is_available() else "rapido"
    modo = unicodedata.normalize("NFKD", bruto).encode("ascii", "ignore").decode()
    if modo not in MODOS:
        raise ValueError(f"LLM_MODO={bruto!r} não é um modo válido. Use um destes: {', '.join(MODOS)}.")
    return modo

def get_device() -> torch.device:
    """Melhor dispositivo disponível: GPU CUDA, depois GPU Apple (MPS), senão CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def describe_device(device: torch.device | None = None) -> str:
    """Descrição curta do dispositivo para relatórios (nome da GPU ou núcleos da CPU)."""
    device = device or get_device()
    if device.type == "cuda":
        return f"GPU {torch.cuda.get_device_name(device)}"
    if device.type == "mps":
        return "GPU Apple (MPS)"
    return f"CPU ({os.cpu_count()} núcleos)"


def set_seed(seed: int = 123) -> None:
    """Fixa as sementes de Python, NumPy e PyTorch (CPU e GPU) para resultados reprodutíveis."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)

def project_root() -> Path:
    """Raiz do repositório do curso (a pasta com `ferramentas/exportar.py`), procurando a partir da pasta atual."""
    atual = Path.cwd().resolve()
    for pasta in (atual, *atual.parents):
        if (pasta / "ferramentas" / "exportar.py").exists():
            return pasta
    return Path.home() / ".cache" / "fazendo-um-llm-do-zero"


def cache_dir() -> Path:
    """Pasta dos downloads: LLM_CACHE_DIR, ou `dados-cache/` na raiz do repositório."""
    return Path(os.environ.get("LLM_CACHE_DIR") or project_root() / "dados-cache")


def artifacts_dir() -> Path:
    """Pasta de modelos treinados e resultados: LLM_ARTEFATOS, ou `artefatos/` na raiz do repositório."""
    return Path(os.environ.get("LLM_ARTEFATOS") or project_root() / "artefatos")


class DownloadError(RuntimeError):
    """Falha ao obter um arquivo: rede, espelho ou verificação. A mensagem diz o que fazer."""


def sha256_of(path: Path) -> str:
    """SHA-256 de um arquivo, lido em pedaços (serve para arquivos grandes)."""
    soma = hashlib.sha256()
    with open(path, "rb") as f:
        for pedaco in iter(lambda: f.read(1 << 20), b""):
            soma.update(pedaco)
    return soma.hexdigest()


def _show_path(path: Path) -> str:
    """Caminho para mensagens: relativo à raiz do repositório quando estiver dentro dela."""
    try:
        return Path(path).resolve().relative_to(project_root()).as_posix()
    except ValueError:
        return str(path)


def _mirror_folder() -> Path | None:
    """Pasta do espelho local (LLM_DADOS_ESPELHO), relativa à pasta atual ou à raiz do repositório."""
    bruto = os.environ.get("LLM_DADOS_ESPELHO")
    if not bruto:
        return None
    for candidato in (Path(bruto), project_root() / bruto):
        if candidato.is_dir():
            return candidato
    return None


def _check_file(part: Path, url: str, fonte: str, sha256: str | None,
                validate: Callable[[Path], None] | None) -> None:
    """Confere SHA-256 e conteúdo de um arquivo recém-obtido; em caso de problema, apaga-o e explica."""
    if sha256 is not None:
        obtido = sha256_of(part)
        if obtido != sha256:
            part.unlink(missing_ok=True)
            raise DownloadError(
                f"O arquivo obtido de {fonte} está corrompido ou não é o esperado: SHA-256 {obtido[:16]}…, "
                f"esperado {sha256[:16]}…. Nada foi guardado no cache. Tente de novo; se persistir, baixe-o "
                f"à mão de {url}.")
    if validate is not None:
        try:
            validate(part)
        except Exception as erro:
            part.unlink(missing_ok=True)
            raise DownloadError(f"O arquivo obtido de {fonte} não tem o conteúdo esperado: {erro}. "
                                f"Nada foi guardado no cache.") from erro


def _is_valid(path: Path, sha256: str | None, validate: Callable[[Path], None] | None) -> bool:
    if sha256 is not None and sha256_of(path) != sha256:
        return False
    if validate is not None:
        try:
            validate(path)
        except Exception:
            return False
    return True


def download_file(url: str, path: str | Path, sha256: str | None = None, mirror_name: str | None = None,
                  validate: Callable[[Path], None] | None = None, timeout: float = 30.0,
                  quiet: bool = False) -> Path:
    """Baixa `url` para `path` com cache, espelho local, escrita atômica e verificação.

    - Se `path` já existe e confere (SHA-256 e/ou `validate`), nada é baixado.
    - Se LLM_DADOS_ESPELHO aponta para uma pasta com `mirror_name`, o arquivo é copiado de lá.
    - Senão, é baixado da internet para `path.part` e só renomeado para `path` depois de verificado.
    - `validate(caminho)` pode conferir o conteúdo quando não há SHA-256 fixo (e deve levantar erro se não servir).
    Qualquer falha levanta DownloadError com a URL e o jeito de colocar o arquivo à mão; nada incompleto fica.
    """
    path = Path(path)
    if path.exists():
        if _is_valid(path, sha256, validate):
            return path
        if not quiet:
            print(f"{path.name} está no cache mas não confere; obtendo de novo.")
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    espelho = _mirror_folder()
    origem = espelho / mirror_name if espelho is not None and mirror_name else None
    try:
        if origem is not None and origem.is_file():
            shutil.copyfile(origem, part)
            fonte = f"espelho local (LLM_DADOS_ESPELHO: {mirror_name})"
        else:
            _fetch_url(url, part, timeout, quiet)
            fonte = url
        _check_file(part, url, fonte, sha256, validate)
        os.replace(part, path)
    finally:
        part.unlink(missing_ok=True)
    if not quiet:
        print(f"{path.name}: {path.stat().st_size:,} bytes obtidos de {fonte}".replace(",", "."))
    return path


def _fetch_url(url: str, part: Path, timeout: float, quiet: bool) -> None:
    """Baixa `url` para o arquivo `part`, com barra de progresso; erros viram DownloadError em português."""
    from tqdm.auto import tqdm

    destino_final = part.with_name(part.name.removesuffix(".part"))
    ajuda = (f"Sem internet? Baixe o arquivo em outro computador e coloque-o em {_show_path(destino_final)}, "
             f"ou aponte LLM_DADOS_ESPELHO para uma pasta com uma cópia.")
    try:
        pedido = urllib.request.Request(url, headers={"User-Agent": "fazendo-um-llm-do-zero"})
        with urllib.request.urlopen(pedido, timeout=timeout) as resposta, open(part, "wb") as saida:
            total = int(resposta.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=destino_final.name,
                      disable=quiet or total is None) as barra:
                for pedaco in iter(lambda: resposta.read(1 << 16), b""):
                    saida.write(pedaco)
                    barra.update(len(pedaco))
    except (urllib.error.URLError, OSError, ValueError) as erro:
        part.unlink(missing_ok=True)
        motivo = getattr(erro, "reason", erro)
        raise DownloadError(f"Não consegui baixar {url} ({motivo}). {ajuda}") from erro

_MACHADO = "https://raw.githubusercontent.com/luxedo/dataset-machado-de-assis/master/txt"
_GPT2_BPE = "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main"

DATA_FILES: dict[str, dict] = {
    "machado/casaVelha.txt": {"url": f"{_MACHADO}/romance/casaVelha.txt",
                              "sha256": "5defe6c618f2d0538523e3f6fec112d46b1656b1c7a896ec18c57d1eeb99bd64"},
    "machado/contosFluminenses.txt": {"url": f"{_MACHADO}/conto/contosFluminenses.txt",
                                      "sha256": "eb84024c30a15ca99efdce4e24812128a5c4d83fda0e1bc2d4500dd5760e76de"},
    "machado/domCasmurro.txt": {"url": f"{_MACHADO}/romance/domCasmurro.txt",
                                "sha256": "d2d0da51e599361f12347905e9aedd32527912e0676111131bd919f792ef9360"},
    "machado/esau.txt": {"url": f"{_MACHADO}/romance/esau.txt",
                         "sha256": "2c6c40a46e0b37157438a0652a859b265c90fcb3f8992dc68035c427dc365ea2"},
    "machado/helena.txt": {"url": f"{_MACHADO}/romance/helena.txt",
                           "sha256": "13cb0ae9ac7915a745d3d8a5aa7caa6f73eaadaa3ac1640aa3d988434a1e121b"},
    "machado/historiasMeiaNoite.txt": {"url": f"{_MACHADO}/conto/historiasMeiaNoite.txt",
                                       "sha256": "ff8740d7592a6c0a6c89d6d64532ba59783bc3b08b030b19cd99682972c55241"},
    "machado/historiasSemData.txt": {"url": f"{_MACHADO}/conto/historiasSemData.txt",
                                     "sha256": "7b06454bdb9ac08f8c11d6c3188b921458be3f0576f2121b1b58f828258682db"},
    "machado/iaia.txt": {"url": f"{_MACHADO}/romance/iaia.txt",
                         "sha256": "e7089fa955d334b5cc26ceb3e0e681695ffd18c74d86b3bf64965314f20cda9c"},
    "machado/maoLuva.txt": {"url": f"{_MACHADO}/romance/maoLuva.txt",
                            "sha256": "b15a6fb8db0291c4e3228a24534907d5b38344b4ecfae4301b3d8041de16e3b7"},
    "machado/memorial-de-aires.txt": {"url": f"{_MACHADO}/romance/memorial-de-aires.txt",
                                      "sha256": "76343d1bb6ab6dd58cc9623d3862f852ebb706b1b6dc827066d83bffa3e78289"},
    "machado/memoriasBras.txt": {"url": f"{_MACHADO}/romance/memoriasBras.txt",
                                 "sha256": "3cb24e357d9c5ae7c95b4efb4949e7b8838a528577281bc875f6e8e9a9780bba"},
    "machado/paginasRecolhidas.txt": {"url": f"{_MACHADO}/conto/paginasRecolhidas.txt",
                                      "sha256": "2df54b36a5d15bf22f067b99c8d1ec911b40a904f7bf38b93729d001fd640c0f"},
    "machado/papeisAvulsos.txt": {"url": f"{_MACHADO}/conto/papeisAvulsos.txt",
                                  "sha256": "cfb8934bb81b1b731455565fc4aeacffa0443acbcacf7cd9b86d4bce26429392"},
    "machado/quincas.txt": {"url": f"{_MACHADO}/romance/quincas.txt",
                            "sha256": "dc7b6452a1aa0f9bfe170035b25bcdef8d2b528fe081fe2aa2d5a6d76a2b5be1"},
    "machado/reliquias.txt": {"url": f"{_MACHADO}/conto/reliquias.txt",
                              "sha256": "22670d377a0fdd79ee8b69689a26b3df0e12e1ed4b45d0605ba651927d2de37f"},
    "machado/ressurreicao.txt": {"url": f"{_MACHADO}/romance/ressurreicao.txt",
                                 "sha256": "ffc33c6f6adf780b16e7a81b8a128b9a1bab86523cca9d111bb9214fc95a6f60"},
    "machado/variasHistorias.txt": {"url": f"{_MACHADO}/conto/variasHistorias.txt",
                                    "sha256": "da1b48ccbd6e0f6a295ac4b6fbb509e2cc36af75f420e4cf3a4794fa44089dce"},
    "gpt2/vocab.bpe": {"url": f"{_GPT2_BPE}/vocab.bpe",
                       "sha256": "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5"},
    "gpt2/encoder.json": {"url": f"{_GPT2_BPE}/encoder.json",
                          "sha256": "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783"},
    "Fake.br-Corpus-master.zip": {"url": "https://github.com/roneysco/Fake.br-Corpus/archive/refs/heads/master.zip",
                                  "sha256": None},
}


def get_data_file(name: str, validate: Callable[[Path], None] | None = None, quiet: bool = False) -> Path:
    """Caminho no cache de um arquivo do registro DATA_FILES, obtido (e verificado) se ainda não estiver lá."""
    if name not in DATA_FILES:
        raise KeyError(f"{name!r} não está no registro de dados do curso. Opções: {', '.join(sorted(DATA_FILES))}")
    info = DATA_FILES[name]
    return download_file(info["url"], cache_dir() / name, sha256=info["sha256"], mirror_name=name,
                         validate=validate, quiet=quiet)

def save_results(capitulo: str, metricas: dict, tempo_s: float, device: torch.device | None = None) -> Path:
    """Grava `artefatos/resultados/<capitulo>.json` com métricas, tempo, modo e máquina."""
    destino = artifacts_dir() / "resultados" / f"{capitulo}.json"
    destino.parent.mkdir(parents=True, exist_ok=True)
    registro = {
        "capitulo": capitulo,
        "modo": get_mode(),
        "dispositivo": describe_device(device),
        "tempo_s": round(float(tempo_s), 1),
        "metricas": metricas,
        "torch": torch.__version__,
        "data": time.strftime("%Y-%m-%d"),
    }
    destino.write_text(json.dumps(registro, ensure_ascii=False, indent=2), encoding="utf-8")
    return destino


# ======================================================================
# Capítulo 01-estatistica
# ======================================================================

MACHADO_BOOKS = [
    "casaVelha", "contosFluminenses", "domCasmurro", "esau", "helena", "historiasMeiaNoite", "historiasSemData",
    "iaia", "maoLuva", "memorial-de-aires", "memoriasBras", "paginasRecolhidas", "papeisAvulsos", "quincas",
    "reliquias", "ressurreicao", "variasHistorias",
]


def load_text(name: str = "domCasmurro") -> str:
    """Texto de um livro de Machado de Assis pelo nome curto (ex.: 'domCasmurro'), via cache/espelho/download."""
    if name not in MACHADO_BOOKS:
        raise KeyError(f"Livro {name!r} desconhecido. Opções: {', '.join(MACHADO_BOOKS)}")
    return get_data_file(f"machado/{name}.txt", quiet=True).read_text(encoding="utf-8")

def perplexity(nll: float | torch.Tensor) -> float:
    """Perplexidade = exp(NLL média), com a NLL em nats (log natural).

    `nll` pode ser um número (a NLL média, por exemplo a perda de entropia cruzada de um modelo) ou um tensor com a
    NLL de cada token, -log P(token | contexto), do qual se tira a média. Um modelo uniforme sobre V símbolos
    tem perplexidade V. Se algum token teve probabilidade 0, a NLL é infinita e a perplexidade também.
    """
    valores = torch.as_tensor(nll, dtype=torch.float64)
    if valores.numel() == 0:
        raise ValueError("perplexity recebeu um tensor vazio: não há tokens para avaliar.")
    if torch.isnan(valores).any():
        raise ValueError("A NLL contém NaN: alguma probabilidade saiu de 0/0 (um contexto nunca visto no "
                         "treino?). Use suavização ou confira o modelo antes de medir a perplexidade.")
    media = valores.mean()
    if media < 0:
        raise ValueError(f"NLL média negativa ({media.item():.4f}): passe -log P (a NLL), não log P.")
    return math.exp(media.item()) if media < 700 else math.inf


# ======================================================================
# Capítulo 02-tokens
# ======================================================================

# O padrão do GPT-2 como o tiktoken o escreve (sintaxe do módulo `regex`, que não vem com o Python).
GPT2_SPLIT_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""

# O \s do padrão original é a propriedade Unicode White_Space (o \s do `re` aceita também \x1c-\x1f).
_WHITE_SPACE = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"


def _unicode_class(category_prefix: str) -> str:
    """Conteúdo de uma classe [...] com todos os caracteres cuja categoria Unicode começa com o prefixo dado."""
    ranges, start = [], None
    for cp in range(sys.maxunicode + 2):
        inside = cp <= sys.maxunicode and unicodedata.category(chr(cp)).startswith(category_prefix)
        if inside and start is None:
            start = cp
        elif not inside and start is not None:
            first, last = re.escape(chr(start)), re.escape(chr(cp - 1))
            ranges.append(first if start == cp - 1 else f"{first}-{last}")
            start = None
    return "".join(ranges)


@lru_cache(maxsize=None)
def gpt2_pretokenizer() -> re.Pattern:
    """O padrão de pré-tokenização do GPT-2 reescrito para o `re` da biblioteca padrão.

    \\p{L} (letras) e \\p{N} (números) viram classes explícitas montadas com `unicodedata`; \\s vira a lista de
    espaços Unicode; `$` vira `\\Z`. Montar as classes leva uns décimos de segundo, uma vez só (fica em cache).
    """
    letters, numbers, space = _unicode_class("L"), _unicode_class("N"), _WHITE_SPACE
    return re.compile(
        rf"'(?:[sdmt]|ll|ve|re)"              # contrações do inglês: 's 't 'm 'd 'll 've 're
        rf"| ?[{letters}]+"                   # uma palavra, com o espaço que a precede
        rf"| ?[{numbers}]+"                   # um número, com o espaço que o precede
        rf"| ?[^{space}{letters}{numbers}]+"  # pontuação e símbolos, com o espaço que os precede
        rf"|[{space}]+\Z"                     # espaços no fim do texto
        rf"|[{space}]+(?![^{space}])"         # espaços (o último fica para a palavra seguinte)
        rf"|[{space}]"                        # um espaço que sobrou
    )

def gpt2_bytes_to_unicode() -> dict[int, str]:
    """A tabela do GPT-2 que dá a cada um dos 256 bytes um caractere visível.

    Os arquivos `vocab.bpe` e `encoder.json` escrevem os tokens com esses caracteres (o espaço vira 'Ġ', a quebra
    de linha vira 'Ċ'): os bytes imprimíveis ficam como estão e os outros são levados para 256, 257, ...
    """
    visible = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table, extra = {}, 0
    for b in range(256):
        if b in visible:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


class BPETokenizer:
    """Tokenizador BPE (byte pair encoding) em nível de bytes, com a pré-tokenização do GPT-2.

    - `BPETokenizer().train(texto, vocab_size)` aprende as fusões (merges) num texto;
    - `BPETokenizer.from_gpt2(vocab_bpe, encoder_json)` carrega as fusões do GPT-2 (ids idênticos aos do tiktoken);
    - `encode(texto, allowed_special=...)` / `decode(ids)`: ida e volta exata para qualquer texto Unicode.

    `vocab` guarda id -> bytes; `merges` guarda (id, id) -> id do token novo, na ordem em que foram aprendidas.
    """

    def __init__(self):
        self.vocab: dict[int, bytes] = {b: bytes([b]) for b in range(256)}
        self.merges: dict[tuple[int, int], int] = {}
        self.special_tokens: dict[str, int] = {}
        self._prepare()

    @property
    def n_vocab(self) -> int:
        return len(self.vocab)

    def _prepare(self) -> None:
        """Tabelas derivadas: id de cada byte, posto (ordem) de cada fusão e o cache de pedaços já codificados."""
        ordinary = {tok: i for i, tok in self.vocab.items() if i not in self.special_tokens.values()}
        self._byte_ids = [ordinary[bytes([b])] for b in range(256)]
        self._ranks = {pair: rank for rank, pair in enumerate(self.merges)}
        self._cache: dict[str, list[int]] = {}

    # ---------------------------------------------------------------- treino
    def train(self, text: str, vocab_size: int, special_tokens: tuple[str, ...] = ("<|endoftext|>",)):
        """Aprende `vocab_size - 256 - len(special_tokens)` fusões em `text`; devolve o próprio tokenizador.

        Cada fusão junta o par de tokens vizinhos mais frequente (empate: o par de menores ids), sem nunca
        atravessar a fronteira de um pedaço da pré-tokenização. Mesmo texto e mesmo `vocab_size`, mesmo resultado;
        e as primeiras fusões de um vocabulário maior são exatamente as de um menor.
        """
        n_merges = vocab_size - 256 - len(special_tokens)
        if n_merges < 0:
            raise ValueError(f"vocab_size={vocab_size} é pequeno demais: só os 256 bytes e os "
                             f"{len(special_tokens)} tokens especiais já ocupam {256 + len(special_tokens)}.")
        if not text:
            raise ValueError("O texto de treino está vazio.")
        # 1. Pré-tokeniza e conta pedaços iguais uma vez só ("␣que" aparece milhares de vezes, vira 1 entrada).
        pieces = Counter()
        for part in self._split_special(text, set(special_tokens)):
            if part not in special_tokens:
                pieces.update(gpt2_pretokenizer().findall(part))
        words = [list(piece.encode("utf-8")) for piece in pieces]
        freqs = list(pieces.values())
        # 2. Contagem de todos os pares vizinhos, e um índice par -> palavras que o contêm.
        pair_counts: Counter = Counter()
        where = defaultdict(set)
        for w, word in enumerate(words):
            for pair in zip(word, word[1:]):
                pair_counts[pair] += freqs[w]
                where[pair].add(w)
        # 3. Um heap (fila de prioridade) entrega o par mais frequente; entradas desatualizadas são puladas.
        heap = [(-count, pair) for pair, count in pair_counts.items()]
        heapq.heapify(heap)
        vocab = {b: bytes([b]) for b in range(256)}
        ids_of = {tok: i for i, tok in vocab.items()}
        merges: dict[tuple[int, int], int] = {}
        while len(merges) < n_merges and heap:
            neg_count, pair = heapq.heappop(heap)
            if pair_counts.get(pair, 0) != -neg_count:
                continue  # a contagem deste par mudou depois que ele entrou no heap
            new_bytes = vocab[pair[0]] + vocab[pair[1]]
            new_id = ids_of.get(new_bytes)  # os mesmos bytes já formados por outro par? reaproveita o id
            if new_id is None:
                new_id = len(vocab)
                vocab[new_id], ids_of[new_bytes] = new_bytes, new_id
            merges[pair] = new_id
            # 4. Só as palavras que contêm o par mudam: desconta os pares antigos delas, conta os novos.
            changed = set()
            for w in where.pop(pair, ()):
                old, freq = words[w], freqs[w]
                new = self._merge_pair(old, pair, new_id)
                for p in zip(old, old[1:]):
                    pair_counts[p] -= freq
                    changed.add(p)
                for p in zip(new, new[1:]):
                    pair_counts[p] += freq
                    where[p].add(w)
                    changed.add(p)
                words[w] = new
            for p in changed:
                if pair_counts[p] > 0:
                    heapq.heappush(heap, (-pair_counts[p], p))
                else:
                    del pair_counts[p]
        self.vocab, self.merges = vocab, merges
        self.special_tokens = {tok: len(vocab) + k for k, tok in enumerate(special_tokens)}
        for tok, i in self.special_tokens.items():
            self.vocab[i] = tok.encode("utf-8")
        self._prepare()
        return self

    @staticmethod
    def _merge_pair(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
        """Troca cada ocorrência de `pair` em `ids` (da esquerda para a direita) por `new_id`."""
        out, i = [], 0
        while i < len(ids):
            if i + 1 < len(ids) and ids[i] == pair[0] and ids[i + 1] == pair[1]:
                out.append(new_id)
                i += 2
            else:
                out.append(ids[i])
                i += 1
        return out

    # ---------------------------------------------------------------- codificar e decodificar
    def _encode_piece(self, piece: str) -> list[int]:
        """Bytes do pedaço -> ids, aplicando sempre a fusão disponível aprendida mais cedo (menor posto)."""
        ids = [self._byte_ids[b] for b in piece.encode("utf-8")]
        while len(ids) > 1:
            ranks = [self._ranks.get(pair) for pair in zip(ids, ids[1:])]
            candidates = [(r, i) for i, r in enumerate(ranks) if r is not None]
            if not candidates:
                break
            _, i = min(candidates)  # menor posto; empate: a posição mais à esquerda
            ids[i:i + 2] = [self.merges[(ids[i], ids[i + 1])]]
        return ids

    def encode_ordinary(self, text: str) -> list[int]:
        """Codifica sem tratar tokens especiais (o texto '<|endoftext|>' vira tokens comuns)."""
        out = []
        for piece in gpt2_pretokenizer().findall(text):
            ids = self._cache.get(piece)
            if ids is None:
                ids = self._cache[piece] = self._encode_piece(piece)
            out.extend(ids)
        return out

    def encode(self, text: str, allowed_special: set[str] | str = frozenset()) -> list[int]:
        """Texto -> ids. Tokens especiais só são reconhecidos se estiverem em `allowed_special` (ou "all")."""
        allowed = set(self.special_tokens) if allowed_special == "all" else set(allowed_special)
        forbidden = [tok for tok in self.special_tokens if tok not in allowed and tok in text]
        if forbidden:
            raise ValueError(f"O texto contém o token especial {forbidden[0]!r}. Se ele está aí de propósito, "
                             f"use encode(texto, allowed_special={{{forbidden[0]!r}}}).")
        try:
            out = []
            for part in self._split_special(text, allowed & set(self.special_tokens)):
                if part in allowed and part in self.special_tokens:
                    out.append(self.special_tokens[part])
                else:
                    out.extend(self.encode_ordinary(part))
            return out
        except UnicodeEncodeError as erro:
            raise ValueError(f"O texto tem um caractere que não existe em UTF-8 ({erro.object[erro.start]!r}, "
                             "um 'surrogate' isolado) e por isso não vira bytes.") from erro

    @staticmethod
    def _split_special(text: str, specials: set[str]) -> list[str]:
        """Separa o texto nos tokens especiais dados, mantendo-os como partes próprias."""
        if not specials:
            return [text]
        pattern = "(" + "|".join(re.escape(s) for s in sorted(specials, key=len, reverse=True)) + ")"
        return [part for part in re.split(pattern, text) if part]

    def decode(self, ids) -> str:
        """Ids -> texto. Bytes que não formam UTF-8 válido (um caractere cortado ao meio) viram '�'."""
        try:
            data = b"".join(self.vocab[int(i)] for i in ids)
        except KeyError as erro:
            raise ValueError(f"O id {erro.args[0]} não existe neste vocabulário (0 a {self.n_vocab - 1}).") from None
        return data.decode("utf-8", errors="replace")

    # ---------------------------------------------------------------- os arquivos do GPT-2
    @classmethod
    def from_gpt2(cls, vocab_bpe_path, encoder_json_path) -> "BPETokenizer":
        """Carrega as 50.000 fusões e os 50.257 ids do GPT-2 a partir de `vocab.bpe` e `encoder.json`."""
        encoder = json.loads(Path(encoder_json_path).read_text(encoding="utf-8"))
        lines = Path(vocab_bpe_path).read_text(encoding="utf-8").split("\n")
        byte_of = {char: b for b, char in gpt2_bytes_to_unicode().items()}
        tokenizer = cls()
        try:
            tokenizer.special_tokens = {"<|endoftext|>": encoder["<|endoftext|>"]}
            tokenizer.vocab = {i: (token.encode("utf-8") if token in tokenizer.special_tokens
                                   else bytes(byte_of[char] for char in token))
                               for token, i in encoder.items()}
            tokenizer.merges = {}
            for line in lines[1:]:  # a primeira linha é o cabeçalho "#version: 0.2"
                if line:
                    left, right = line.split(" ")
                    tokenizer.merges[(encoder[left], encoder[right])] = encoder[left + right]
        except (KeyError, ValueError) as erro:
            raise ValueError(f"vocab.bpe e encoder.json não formam um tokenizador GPT-2 válido ({erro!r}). "
                             "Apague-os do cache e obtenha-os de novo.") from erro
        tokenizer._prepare()
        return tokenizer

class GPTDataset(Dataset):
    """Janelas deslizantes sobre um texto tokenizado: cada exemplo é (entrada, alvo = entrada deslocada de 1)."""

    def __init__(self, txt: str, tokenizer, max_length: int, stride: int):
        token_ids = tokenizer.encode(txt, allowed_special={"<|endoftext|>"})
        if len(token_ids) <= max_length:
            raise ValueError(f"O texto tem {len(token_ids)} tokens: precisa de mais que max_length={max_length}.")
        self.input_ids, self.target_ids = [], []
        for inicio in range(0, len(token_ids) - max_length, stride):
            janela = token_ids[inicio:inicio + max_length + 1]
            self.input_ids.append(torch.tensor(janela[:-1]))
            self.target_ids.append(torch.tensor(janela[1:]))

    def __len__(self) -> int:
        return len(self.input_ids)

    def __getitem__(self, i: int):
        return self.input_ids[i], self.target_ids[i]


def create_dataloader(txt: str, batch_size: int = 4, max_length: int = 256, stride: int = 128,
                      shuffle: bool = True, drop_last: bool = True, num_workers: int = 0,
                      tokenizer=None) -> DataLoader:
    """DataLoader de janelas (entrada, alvo) de `max_length` tokens, começando a cada `stride` tokens.

    Sem `tokenizer`, usa o BPE do GPT-2 (tiktoken).
    """
    tokenizer = tokenizer or tiktoken.get_encoding("gpt2")
    dataset = GPTDataset(txt, tokenizer, max_length, stride)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last,
                      num_workers=num_workers)


# ======================================================================
# Capítulo 03-atencao
# ======================================================================

class MultiHeadAttention(nn.Module):
    """Atenção causal com várias cabeças, calculadas juntas e separadas com view/transpose.

    Entrada (lote, tokens, d_in) -> saída (lote, tokens, d_out). Cada cabeça tem head_dim = d_out // num_heads.
    """

    def __init__(self, d_in: int, d_out: int, context_length: int, dropout: float, num_heads: int,
                 qkv_bias: bool = False):
        super().__init__()
        if d_out % num_heads != 0:
            raise ValueError(f"d_out={d_out} precisa ser divisível por num_heads={num_heads}.")
        self.d_out = d_out
        self.num_heads = num_heads
        self.head_dim = d_out // num_heads
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.out_proj = nn.Linear(d_out, d_out)  # mistura as saídas das cabeças
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("mask", torch.triu(torch.ones(context_length, context_length), diagonal=1),
                             persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, num_tokens, _ = x.shape
        if num_tokens > self.mask.shape[0]:
            raise ValueError(f"A entrada tem {num_tokens} tokens, mas esta atenção foi criada com "
                             f"context_length={self.mask.shape[0]}: corte a sequência ou aumente o contexto.")
        # (b, T, d_out) -> (b, T, cabeças, head_dim) -> (b, cabeças, T, head_dim)
        queries = self.W_query(x).view(b, num_tokens, self.num_heads, self.head_dim).transpose(1, 2)
        keys = self.W_key(x).view(b, num_tokens, self.num_heads, self.head_dim).transpose(1, 2)
        values = self.W_value(x).view(b, num_tokens, self.num_heads, self.head_dim).transpose(1, 2)

        attn_scores = queries @ keys.transpose(2, 3)               # (b, cabeças, T, T)
        mask_bool = self.mask.bool()[:num_tokens, :num_tokens]
        attn_scores = attn_scores.masked_fill(mask_bool, float("-inf"))
        attn_weights = torch.softmax(attn_scores / self.head_dim ** 0.5, dim=-1)
        attn_weights = self.dropout(attn_weights)

        context = (attn_weights @ values).transpose(1, 2)          # (b, T, cabeças, head_dim)
        context = context.contiguous().view(b, num_tokens, self.d_out)
        return self.out_proj(context)


# ======================================================================
# Capítulo 04-gpt
# ======================================================================

GPT_CONFIG_124M = {
    "vocab_size": 50257,     # tamanho do vocabulário BPE do GPT-2
    "context_length": 1024,  # quantos tokens o modelo enxerga de uma vez
    "emb_dim": 768,          # dimensão dos vetores
    "n_heads": 12,           # cabeças de atenção
    "n_layers": 12,          # blocos transformer
    "drop_rate": 0.1,        # taxa de dropout
    "qkv_bias": False,       # viés nas projeções Q, K, V
}

class LayerNorm(nn.Module):
    """Normaliza cada vetor para média 0 e variância 1, depois aplica escala e deslocamento aprendidos."""

    def __init__(self, emb_dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.scale = nn.Parameter(torch.ones(emb_dim))
        self.shift = nn.Parameter(torch.zeros(emb_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        media = x.mean(dim=-1, keepdim=True)
        variancia = x.var(dim=-1, keepdim=True, unbiased=False)
        return self.scale * (x - media) / torch.sqrt(variancia + self.eps) + self.shift

class GELU(nn.Module):
    """GELU na aproximação por tanh usada pelo GPT-2."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x * (1 + torch.tanh((2.0 / torch.pi) ** 0.5 * (x + 0.044715 * x ** 3)))

class FeedForward(nn.Module):
    """Duas camadas lineares com GELU no meio; a camada escondida é 4x mais larga."""

    def __init__(self, cfg: dict):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(cfg["emb_dim"], 4 * cfg["emb_dim"]),
            GELU(),
            nn.Linear(4 * cfg["emb_dim"], cfg["emb_dim"]),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)

class TransformerBlock(nn.Module):
    """Atenção e feed-forward, cada um com pré-normalização, dropout e atalho (conexão residual)."""

    def __init__(self, cfg: dict):
        super().__init__()
        self.att = MultiHeadAttention(d_in=cfg["emb_dim"], d_out=cfg["emb_dim"],
                                      context_length=cfg["context_length"], dropout=cfg["drop_rate"],
                                      num_heads=cfg["n_heads"], qkv_bias=cfg["qkv_bias"])
        self.ff = FeedForward(cfg)
        self.norm1 = LayerNorm(cfg["emb_dim"])
        self.norm2 = LayerNorm(cfg["emb_dim"])
        self.drop_shortcut = nn.Dropout(cfg["drop_rate"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_shortcut(self.att(self.norm1(x)))   # atenção + atalho
        x = x + self.drop_shortcut(self.ff(self.norm2(x)))    # feed-forward + atalho
        return x

class GPTModel(nn.Module):
    """O GPT: embeddings de token e posição, n_layers blocos transformer, norma final e cabeça de saída.

    Entrada: ids (lote, T) com T <= context_length. Saída: logits (lote, T, vocab_size).
    """

    def __init__(self, cfg: dict):
        super().__init__()
        self.tok_emb = nn.Embedding(cfg["vocab_size"], cfg["emb_dim"])
        self.pos_emb = nn.Embedding(cfg["context_length"], cfg["emb_dim"])
        self.drop_emb = nn.Dropout(cfg["drop_rate"])
        self.trf_blocks = nn.Sequential(*[TransformerBlock(cfg) for _ in range(cfg["n_layers"])])
        self.final_norm = LayerNorm(cfg["emb_dim"])
        self.out_head = nn.Linear(cfg["emb_dim"], cfg["vocab_size"], bias=False)

    def forward(self, in_idx: torch.Tensor) -> torch.Tensor:
        _, seq_len = in_idx.shape
        if seq_len > self.pos_emb.num_embeddings:   # só há embeddings de posição para context_length posições
            raise IndexError(f"A entrada tem {seq_len} tokens, mas o modelo aceita no máximo "
                             f"context_length={self.pos_emb.num_embeddings}: use só os últimos tokens, "
                             f"por exemplo idx[:, -{self.pos_emb.num_embeddings}:].")
        tok_embeds = self.tok_emb(in_idx)
        pos_embeds = self.pos_emb(torch.arange(seq_len, device=in_idx.device))
        x = self.drop_emb(tok_embeds + pos_embeds)
        x = self.trf_blocks(x)
        x = self.final_norm(x)
        return self.out_head(x)  # logits: (lote, posições, vocab_size)

def generate_text_simple(model: nn.Module, idx: torch.Tensor, max_new_tokens: int, context_size: int) -> torch.Tensor:
    """Geração gulosa (greedy): a cada passo, acrescenta o token mais provável.

    idx: ids (lote, T) do começo do texto. Devolve (lote, T + max_new_tokens).
    """
    if idx.dim() != 2 or idx.shape[1] == 0:
        raise ValueError(f"idx precisa ter formato (lote, T) com T >= 1; veio {tuple(idx.shape)}. "
                         "Use text_to_token_ids(texto, tokenizer) para montar a entrada.")
    for _ in range(max_new_tokens):
        idx_cond = idx[:, -context_size:]          # só o que cabe no contexto
        with torch.no_grad():
            logits = model(idx_cond)[:, -1, :]     # (lote, vocab_size): só a última posição
        idx_next = torch.argmax(logits, dim=-1, keepdim=True)
        idx = torch.cat((idx, idx_next), dim=1)
    return idx


def text_to_token_ids(text: str, tokenizer) -> torch.Tensor:
    """Texto -> tensor (1, n) de ids, pronto para o modelo."""
    encoded = tokenizer.encode(text, allowed_special={"<|endoftext|>"})
    if not encoded:
        raise ValueError("O texto está vazio: o modelo precisa de pelo menos um token para continuar.")
    return torch.tensor(encoded).unsqueeze(0)


def token_ids_to_text(token_ids: torch.Tensor, tokenizer) -> str:
    """Tensor (1, n) ou (n,) de ids -> texto."""
    return tokenizer.decode(token_ids.squeeze(0).tolist())

def load_weights_into_gpt(gpt: "GPTModel", state_dict: dict) -> "GPTModel":
    """Copia os pesos de um GPT-2 no formato Hugging Face (`wte.weight`, `h.0.attn.c_attn.weight`, ...) para o GPTModel.

    Aceita chaves com ou sem o prefixo `transformer.`. As camadas Conv1D do GPT-2 guardam os pesos transpostos
    em relação a nn.Linear; a projeção QKV vem fundida e é dividida em três. A cabeça de saída reutiliza `wte`
    (pesos amarrados). O modelo precisa de `qkv_bias=True`.
    """
    sd = {k.removeprefix("transformer."): v for k, v in state_dict.items()}

    def pegar(chave: str) -> torch.Tensor:
        if chave not in sd:
            raise KeyError(f"O state dict do GPT-2 não tem a chave {chave!r}: é mesmo um checkpoint do GPT-2?")
        return sd[chave]

    def copiar(destino: torch.Tensor, origem: torch.Tensor, chave: str) -> None:
        if destino.shape != origem.shape:
            raise ValueError(f"Formato incompatível em {chave!r}: o checkpoint tem {tuple(origem.shape)}, "
                             f"o modelo espera {tuple(destino.shape)}. Confira a configuração (emb_dim, "
                             f"n_layers, context_length, vocab_size, qkv_bias=True).")
        with torch.no_grad():
            destino.copy_(origem)

    n_camadas_ckpt = len({k.split(".")[1] for k in sd if k.startswith("h.")})
    if n_camadas_ckpt != len(gpt.trf_blocks):
        raise ValueError(f"O checkpoint tem {n_camadas_ckpt} blocos e o modelo {len(gpt.trf_blocks)} (n_layers).")
    if gpt.trf_blocks[0].att.W_query.bias is None:
        raise ValueError("Os pesos do GPT-2 têm viés em Q, K, V: crie o modelo com qkv_bias=True.")

    copiar(gpt.tok_emb.weight, pegar("wte.weight"), "wte.weight")
    copiar(gpt.pos_emb.weight, pegar("wpe.weight"), "wpe.weight")
    for i, bloco in enumerate(gpt.trf_blocks):
        p = f"h.{i}."
        q_w, k_w, v_w = pegar(p + "attn.c_attn.weight").chunk(3, dim=-1)   # (d, 3d) -> 3 x (d, d)
        q_b, k_b, v_b = pegar(p + "attn.c_attn.bias").chunk(3, dim=-1)
        copiar(bloco.att.W_query.weight, q_w.T, p + "attn.c_attn.weight (Q)")
        copiar(bloco.att.W_key.weight, k_w.T, p + "attn.c_attn.weight (K)")
        copiar(bloco.att.W_value.weight, v_w.T, p + "attn.c_attn.weight (V)")
        copiar(bloco.att.W_query.bias, q_b, p + "attn.c_attn.bias (Q)")
        copiar(bloco.att.W_key.bias, k_b, p + "attn.c_attn.bias (K)")
        copiar(bloco.att.W_value.bias, v_b, p + "attn.c_attn.bias (V)")
        copiar(bloco.att.out_proj.weight, pegar(p + "attn.c_proj.weight").T, p + "attn.c_proj.weight")
        copiar(bloco.att.out_proj.bias, pegar(p + "attn.c_proj.bias"), p + "attn.c_proj.bias")
        copiar(bloco.ff.layers[0].weight, pegar(p + "mlp.c_fc.weight").T, p + "mlp.c_fc.weight")
        copiar(bloco.ff.layers[0].bias, pegar(p + "mlp.c_fc.bias"), p + "mlp.c_fc.bias")
        copiar(bloco.ff.layers[2].weight, pegar(p + "mlp.c_proj.weight").T, p + "mlp.c_proj.weight")
        copiar(bloco.ff.layers[2].bias, pegar(p + "mlp.c_proj.bias"), p + "mlp.c_proj.bias")
        copiar(bloco.norm1.scale, pegar(p + "ln_1.weight"), p + "ln_1.weight")
        copiar(bloco.norm1.shift, pegar(p + "ln_1.bias"), p + "ln_1.bias")
        copiar(bloco.norm2.scale, pegar(p + "ln_2.weight"), p + "ln_2.weight")
        copiar(bloco.norm2.shift, pegar(p + "ln_2.bias"), p + "ln_2.bias")
    copiar(gpt.final_norm.scale, pegar("ln_f.weight"), "ln_f.weight")
    copiar(gpt.final_norm.shift, pegar("ln_f.bias"), "ln_f.bias")
    copiar(gpt.out_head.weight, pegar("wte.weight"), "wte.weight (cabeça de saída amarrada)")
    return gpt


# ======================================================================
# Capítulo 05-pretreino
# ======================================================================

PRETRAIN_SETTINGS = {
    "rapido": {
        "model": {"vocab_size": 50257, "context_length": 128, "emb_dim": 128, "n_heads": 4, "n_layers": 2,
                  "drop_rate": 0.0, "qkv_bias": False},
        "train_books": ["domCasmurro"], "val_books": None, "val_fraction": 0.1,
        "batch_size": 8, "lr": 6e-3, "weight_decay": 0.1, "num_epochs": 4, "max_steps": 150, "max_seconds": 120,
        "eval_freq": 25, "eval_iter": 4,
    },
    "completo": {
        "model": {"vocab_size": 50257, "context_length": 256, "emb_dim": 512, "n_heads": 8, "n_layers": 8,
                  "drop_rate": 0.1, "qkv_bias": False},
        "train_books": [b for b in MACHADO_BOOKS if b not in ("memorial-de-aires", "reliquias")],
        "val_books": ["memorial-de-aires", "reliquias"], "val_fraction": None,
        "batch_size": 16, "lr": 6e-4, "weight_decay": 0.1, "num_epochs": 4, "max_steps": None, "max_seconds": 1800,
        "eval_freq": 200, "eval_iter": 20,
    },
}


def load_pretraining_texts(mode: str | None = None) -> tuple[str, str]:
    """Textos de treino e validação do pré-treino.

    rápido: Dom Casmurro, os primeiros 90% para treino e os últimos 10% para validação (cortes contíguos);
    completo: livros inteiros de cada lado, separados pelo token especial <|endoftext|>.
    """
    cfg = PRETRAIN_SETTINGS[mode or get_mode()]
    separador = "<|endoftext|>"
    treino = separador.join(load_text(b) for b in cfg["train_books"])
    if cfg["val_books"]:
        return treino, separador.join(load_text(b) for b in cfg["val_books"])
    corte = int(len(treino) * (1 - cfg["val_fraction"]))
    return treino[:corte], treino[corte:]


def create_pretraining_loaders(mode: str | None = None):
    """Carregadores (treino, validação) de janelas sem sobreposição, no tamanho de contexto do modo."""
    cfg = PRETRAIN_SETTINGS[mode or get_mode()]
    texto_treino, texto_val = load_pretraining_texts(mode)
    ctx = cfg["model"]["context_length"]
    train_loader = create_dataloader(texto_treino, cfg["batch_size"], ctx, ctx, shuffle=True, drop_last=True)
    val_loader = create_dataloader(texto_val, cfg["batch_size"], ctx, ctx, shuffle=False, drop_last=False)
    return train_loader, val_loader

def calc_loss_batch(input_batch: torch.Tensor, target_batch: torch.Tensor, model, device) -> torch.Tensor:
    """Entropia cruzada média do próximo token em um lote (entrada e alvo com formato (lote, posições))."""
    input_batch, target_batch = input_batch.to(device), target_batch.to(device)
    logits = model(input_batch)                                    # (lote, posições, vocabulário)
    return torch.nn.functional.cross_entropy(logits.flatten(0, 1), target_batch.flatten())


def calc_loss_loader(data_loader, model, device, num_batches: int | None = None) -> float:
    """Perda média nos primeiros `num_batches` lotes do carregador (todos, se None); NaN se não houver lotes."""
    num_batches = len(data_loader) if num_batches is None else min(num_batches, len(data_loader))
    if num_batches == 0:
        return float("nan")
    total = 0.0
    for i, (input_batch, target_batch) in enumerate(data_loader):
        if i >= num_batches:
            break
        total += calc_loss_batch(input_batch, target_batch, model, device).item()
    return total / num_batches


def evaluate_model(model, train_loader, val_loader, device, eval_iter: int) -> tuple[float, float]:
    """Perdas de treino e validação em `eval_iter` lotes, em modo de avaliação e sem gradiente."""
    model.eval()
    with torch.no_grad():
        train_loss = calc_loss_loader(train_loader, model, device, num_batches=eval_iter)
        val_loss = calc_loss_loader(val_loader, model, device, num_batches=eval_iter)
    model.train()
    return train_loss, val_loss


def generate_and_print_sample(model, tokenizer, device, start_context: str, max_new_tokens: int = 40) -> str:
    """Gera uma continuação gulosa de `start_context`, imprime em uma linha e devolve o texto."""
    model.eval()
    context_size = model.pos_emb.weight.shape[0]
    encoded = text_to_token_ids(start_context, tokenizer).to(device)
    with torch.no_grad():
        token_ids = generate_text_simple(model, encoded, max_new_tokens, context_size)
    texto = token_ids_to_text(token_ids, tokenizer)
    print(texto.replace("\n", " "))
    model.train()
    return texto


def train_model_simple(model, train_loader, val_loader, optimizer, device, num_epochs: int, eval_freq: int,
                       eval_iter: int, start_context: str, tokenizer, max_seconds: float | None = None,
                       max_steps: int | None = None):
    """Laço de pré-treinamento: épocas de lotes, avaliação a cada `eval_freq` passos, amostra ao fim de cada época.

    `max_steps` e `max_seconds` encerram o treino antes do fim das épocas (o que vier primeiro); a última
    medição acontece no passo em que o treino parou.
    Devolve (train_losses, val_losses, track_tokens_seen): as perdas medidas e os tokens vistos em cada medição.
    """
    train_losses, val_losses, track_tokens_seen = [], [], []
    tokens_seen, global_step = 0, -1
    inicio = time.perf_counter()
    motivo = None
    total = num_epochs * len(train_loader) if max_steps is None else min(max_steps, num_epochs * len(train_loader))
    barra = tqdm(total=total, desc="pré-treino", unit="passo")
    for epoch in range(num_epochs):
        model.train()
        for input_batch, target_batch in train_loader:
            optimizer.zero_grad()
            loss = calc_loss_batch(input_batch, target_batch, model, device)
            loss.backward()
            optimizer.step()
            tokens_seen += input_batch.numel()
            global_step += 1
            barra.update(1)
            if max_steps is not None and global_step + 1 >= max_steps:
                motivo = f"{max_steps} passos"
            elif max_seconds is not None and time.perf_counter() - inicio > max_seconds:
                motivo = f"tempo esgotado ({max_seconds:.0f} s)"
            if global_step % eval_freq == 0 or motivo:
                train_loss, val_loss = evaluate_model(model, train_loader, val_loader, device, eval_iter)
                train_losses.append(train_loss)
                val_losses.append(val_loss)
                track_tokens_seen.append(tokens_seen)
                barra.set_postfix(treino=f"{train_loss:.3f}", val=f"{val_loss:.3f}")
            if motivo:
                break
        barra.write(f"época {epoch + 1}, passo {global_step + 1}:")
        generate_and_print_sample(model, tokenizer, device, start_context)
        if motivo:
            barra.write(f"{motivo}: fim do treino.")
            break
    barra.close()
    return train_losses, val_losses, track_tokens_seen

def save_checkpoint(path: str | Path, model, optimizer=None, config: dict | None = None, **extra) -> Path:
    """Salva modelo (+ otimizador, se houver), configuração e extras em um arquivo carregável com weights_only=True."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pacote = {"config": dict(config or {}), "model_state_dict": model.state_dict(), **extra}
    if optimizer is not None:
        pacote["optimizer_state_dict"] = optimizer.state_dict()
    temporario = path.with_name(path.name + ".part")
    torch.save(pacote, temporario)
    temporario.replace(path)
    return path


def load_checkpoint(path: str | Path, device="cpu", optimizer=None, model=None):
    """Carrega um checkpoint do curso: devolve (GPTModel com os pesos, dicionário do checkpoint).

    Sem `model`, cria um GPTModel novo a partir da configuração guardada. Para **retomar um treino**, crie antes o
    modelo e o otimizador e passe os dois (`model=`, `optimizer=`): os pesos e o estado do otimizador são
    restaurados neles. Arquivo ausente -> FileNotFoundError; arquivo que não é um checkpoint do curso, ou pesos
    que não combinam com a configuração (ou com o `model` recebido) -> ValueError. As mensagens dizem o arquivo.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Checkpoint não encontrado: {path}. Rode o capítulo que o cria "
                                f"(05-pretreino para o modelo base) ou confira o caminho.")
    try:
        pacote = torch.load(path, map_location=device, weights_only=True)
    except Exception as erro:
        raise ValueError(f"Não consegui ler o checkpoint {path}: o arquivo está corrompido ou não foi salvo "
                         f"com torch.save ({type(erro).__name__}).") from erro
    if not isinstance(pacote, dict) or "config" not in pacote or "model_state_dict" not in pacote:
        raise ValueError(f"{path} não é um checkpoint do curso (faltam 'config' e/ou 'model_state_dict').")
    referencia = "o modelo recebido" if model is not None else "a configuração que ele mesmo declara"
    if model is None:
        try:
            model = GPTModel(pacote["config"])
        except (KeyError, TypeError, ValueError) as erro:
            raise ValueError(f"A configuração guardada em {path} não descreve um GPTModel: {erro!r}.") from erro
    esperado = model.state_dict()
    recebido = pacote["model_state_dict"]
    faltam = sorted(set(esperado) - set(recebido))
    sobram = sorted(set(recebido) - set(esperado))
    formatos = [f"{k}: arquivo {tuple(recebido[k].shape)} x modelo {tuple(v.shape)}"
                for k, v in esperado.items() if k in recebido and recebido[k].shape != v.shape]
    if faltam or sobram or formatos:
        detalhes = "; ".join(filter(None, [
            f"faltam {faltam[:3]}" if faltam else "",
            f"sobram {sobram[:3]}" if sobram else "",
            f"formatos diferentes: {formatos[:3]}" if formatos else ""]))
        raise ValueError(f"O checkpoint {path} não combina com {referencia}: {detalhes}.")
    model.load_state_dict(recebido)
    model.to(device)
    if optimizer is not None:
        if "optimizer_state_dict" not in pacote:
            raise ValueError(f"O checkpoint {path} não guardou o estado do otimizador: não dá para retomar o "
                             f"treino dele (carregue só o modelo, sem optimizer=).")
        try:
            optimizer.load_state_dict(pacote["optimizer_state_dict"])
        except (ValueError, KeyError) as erro:
            raise ValueError(f"O estado do otimizador em {path} não combina com o otimizador recebido: {erro}") \
                from erro
    return model, pacote

def base_checkpoint_path(mode: str | None = None) -> Path:
    """Onde o capítulo 05 guarda o modelo base pré-treinado de cada modo (em artefatos/checkpoints/)."""
    return artifacts_dir() / "checkpoints" / f"05-pretreino-{mode or get_mode()}.pt"


def pretrain_base_model(mode: str | None = None, device=None, seed: int = 123):
    """Pré-treina o modelo base do modo escolhido e o salva em base_checkpoint_path(mode).

    Devolve (model, historico): as perdas medidas durante o treino, os tokens vistos, as perdas finais
    (`train_loss` em 10 lotes de treino, `val_loss` na validação inteira) e o tempo de treino em segundos.
    """
    mode = mode or get_mode()
    device = device or get_device()
    cfg = PRETRAIN_SETTINGS[mode]
    set_seed(seed)
    train_loader, val_loader = create_pretraining_loaders(mode)
    model = GPTModel(cfg["model"]).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    inicio = time.perf_counter()
    train_losses, val_losses, tokens = train_model_simple(
        model, train_loader, val_loader, optimizer, device, cfg["num_epochs"], cfg["eval_freq"], cfg["eval_iter"],
        "Capitu olhou para mim e", tiktoken.get_encoding("gpt2"), max_seconds=cfg["max_seconds"],
        max_steps=cfg["max_steps"])
    tempo_s = time.perf_counter() - inicio
    model.eval()
    with torch.no_grad():
        val_loss = calc_loss_loader(val_loader, model, device)
        train_loss = calc_loss_loader(train_loader, model, device, num_batches=10)
    historico = {"train_losses": train_losses, "val_losses": val_losses, "tokens_seen": tokens,
                 "train_loss": train_loss, "val_loss": val_loss, "tempo_s": tempo_s, "modo": mode}
    save_checkpoint(base_checkpoint_path(mode), model, optimizer, cfg["model"], historico=historico)
    return model, historico

def generate(model, idx: torch.Tensor, max_new_tokens: int, context_size: int, temperature: float = 0.0,
             top_k: int | None = None, top_p: float | None = None, eos_id: int | None = None) -> torch.Tensor:
    """Gera até `max_new_tokens` tokens depois de `idx` (formato (lote, n)) e devolve a sequência inteira.

    temperature=0 é a escolha gulosa (top_k e top_p são ignorados); com temperature > 0, os logits são divididos
    pela temperatura, filtrados por top-k e depois por top-p (núcleo), e o próximo token é sorteado.
    Só os últimos `context_size` tokens entram no modelo. Com `eos_id`, para quando todas as sequências do lote
    geram esse token (ele não é incluído). O modelo roda em modo de avaliação e volta ao modo em que estava.
    """
    if idx.dim() != 2:
        raise ValueError(f"O prompt deve ter formato (lote, n_tokens), mas chegou {tuple(idx.shape)}: "
                         f"use text_to_token_ids(texto, tokenizer).")
    if idx.shape[1] == 0:
        raise ValueError("O prompt está vazio: escreva pelo menos uma palavra (o modelo precisa de um token "
                         "para começar).")
    if temperature < 0:
        raise ValueError(f"temperature={temperature}: a temperatura não pode ser negativa (0 = escolha gulosa).")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k={top_k}: precisa ser pelo menos 1.")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p={top_p}: precisa estar no intervalo (0, 1].")
    estava_treinando = model.training
    model.eval()
    try:
        for _ in range(max_new_tokens):
            with torch.no_grad():
                logits = model(idx[:, -context_size:])[:, -1, :]     # (lote, vocabulário)
            if temperature > 0.0:
                logits = logits / temperature
                if top_k is not None:
                    corte = torch.topk(logits, min(top_k, logits.shape[-1])).values[:, -1:]
                    logits = logits.masked_fill(logits < corte, float("-inf"))
                if top_p is not None and top_p < 1.0:
                    ordenados, indices = torch.sort(logits, descending=True, dim=-1)
                    probs = torch.softmax(ordenados, dim=-1)
                    remover = torch.cumsum(probs, dim=-1) - probs >= top_p   # o primeiro token nunca sai
                    ordenados = ordenados.masked_fill(remover, float("-inf"))
                    logits = torch.full_like(logits, float("-inf")).scatter(-1, indices, ordenados)
                idx_next = torch.multinomial(torch.softmax(logits, dim=-1), num_samples=1)
            else:
                idx_next = torch.argmax(logits, dim=-1, keepdim=True)
            if eos_id is not None and bool((idx_next == eos_id).all()):
                break
            idx = torch.cat((idx, idx_next), dim=1)
    finally:
        model.train(estava_treinando)
    return idx

GPT2_SIZES = {
    "gpt2": {"emb_dim": 768, "n_layers": 12, "n_heads": 12},
    "gpt2-medium": {"emb_dim": 1024, "n_layers": 24, "n_heads": 16},
    "gpt2-large": {"emb_dim": 1280, "n_layers": 36, "n_heads": 20},
    "gpt2-xl": {"emb_dim": 1600, "n_layers": 48, "n_heads": 25},
}
GPT2_WEIGHTS_URL = "https://huggingface.co/openai-community/{size}/resolve/main/model.safetensors"


def gpt2_config(size: str = "gpt2") -> dict:
    """Configuração do GPTModel para um tamanho do GPT-2 (contexto 1024, qkv_bias=True como o original)."""
    if size not in GPT2_SIZES:
        raise ValueError(f"Tamanho {size!r} desconhecido. Opções: {', '.join(GPT2_SIZES)}.")
    return {"vocab_size": 50257, "context_length": 1024, "drop_rate": 0.0, "qkv_bias": True, **GPT2_SIZES[size]}


def _require_safetensors() -> None:
    """Levanta ImportError com a instrução de instalação se o pacote safetensors não estiver disponível."""
    try:
        import safetensors  # noqa: F401
    except ImportError as erro:
        raise ImportError("Os pesos do GPT-2 vêm no formato safetensors: instale o pacote com "
                          "`pip install safetensors` e rode a célula de novo.") from erro


def _check_gpt2_safetensors(path: Path) -> None:
    """Confere que o arquivo é um safetensors legível com as chaves do GPT-2; levanta erro se não for."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as arquivo:
        chaves = {k.removeprefix("transformer.") for k in arquivo.keys()}
    if not {"wte.weight", "h.0.attn.c_attn.weight"} <= chaves:
        raise ValueError("o arquivo não tem as chaves do GPT-2 (wte.weight, h.0.attn.c_attn.weight)")


def download_gpt2_weights(size: str = "gpt2") -> Path:
    """Baixa (uma vez) o `model.safetensors` do GPT-2 do Hugging Face e devolve o caminho no cache.

    Usa o espelho local (LLM_DADOS_ESPELHO, arquivo `gpt2-pesos/<size>/model.safetensors`) se houver. Falhas de
    rede ou arquivo inválido levantam DownloadError em português, sem deixar nada incompleto no cache.
    """
    gpt2_config(size)
    _require_safetensors()
    url = GPT2_WEIGHTS_URL.format(size=size)
    return download_file(url, cache_dir() / "gpt2-pesos" / size / "model.safetensors",
                         mirror_name=f"gpt2-pesos/{size}/model.safetensors", validate=_check_gpt2_safetensors,
                         timeout=60)


def load_gpt2(size: str = "gpt2", device="cpu") -> "GPTModel":
    """GPTModel com os pesos originais do GPT-2 (baixados uma vez, depois lidos do cache), em modo de avaliação."""
    caminho = download_gpt2_weights(size)
    from safetensors.torch import load_file

    model = GPTModel(gpt2_config(size))
    load_weights_into_gpt(model, load_file(str(caminho)))
    return model.to(device).eval()

BASE_SOURCES = ("auto", "checkpoint", "gpt2", "pretrain")


def load_base_model(mode: str | None = None, device=None, source: str = "auto"):
    """Modelo base para os capítulos 06–08, em modo de avaliação. Devolve (model, config, fonte).

    source='auto': o checkpoint do capítulo 05 deste modo, se existir e servir; senão, no modo completo, os
    pesos do GPT-2 124M; senão, um pré-treino rápido (salvo para a próxima vez).
    source='checkpoint' | 'gpt2' | 'pretrain' força uma das três fontes (e falha com erro claro se ela falhar).
    `fonte` é 'checkpoint', 'gpt2' ou 'pretrain'.
    """
    if source not in BASE_SOURCES:
        raise ValueError(f"source={source!r} não existe. Opções: {', '.join(BASE_SOURCES)}.")
    mode = mode or get_mode()
    device = device or get_device()
    caminho = base_checkpoint_path(mode)
    if source in ("auto", "checkpoint"):
        try:
            model, pacote = load_checkpoint(caminho, device)
            if pacote["config"].get("vocab_size") != 50257:
                raise ValueError(f"o checkpoint {caminho.name} não usa o vocabulário do GPT-2 (50257 tokens).")
            print(f"Modelo base: checkpoint do capítulo 05 ({caminho.name}).")
            return model.eval(), pacote["config"], "checkpoint"
        except (FileNotFoundError, ValueError) as erro:
            if source == "checkpoint":
                raise
            if caminho.exists():
                print(f"O checkpoint {caminho.name} não serve ({erro}); vou usar outra fonte.")
    if source == "gpt2" or (source == "auto" and mode == "completo"):
        try:
            model = load_gpt2("gpt2", device)
            print("Modelo base: pesos originais do GPT-2 124M (OpenAI).")
            return model, gpt2_config("gpt2"), "gpt2"
        except (DownloadError, ImportError) as erro:
            if source == "gpt2":
                raise
            print(f"Sem os pesos do GPT-2 ({erro}); vou pré-treinar um modelo.")
    print(f"Modelo base: pré-treinando um modelo no modo {mode} agora "
          f"(até {PRETRAIN_SETTINGS[mode]['max_seconds']} s de treino)...")
    model, _ = pretrain_base_model(mode, device)
    return model.eval(), dict(PRETRAIN_SETTINGS[mode]["model"]), "pretrain"


# ======================================================================
# Capítulo 06-finetuning
# ======================================================================

FAKEBR_ZIP = "Fake.br-Corpus-master.zip"
FAKEBR_PAIRS = 3600                       # numerados de 1 a 3602 (faltam o 586 e o 1607)
FAKEBR_LABELS = ("verdadeira", "falsa")   # rótulo 0 e rótulo 1
_FAKEBR_MEMBER = re.compile(r"(?:^|/)size_normalized_texts/(fake|true)/(\d+)\.txt$")


def _fakebr_members(path: Path) -> dict[tuple[str, int], str]:
    """Confere o zip do Fake.br e devolve {(pasta, número do par): nome do arquivo dentro do zip}.

    Levanta ValueError (em português, dizendo o que falta) se o zip não abre, está corrompido ou incompleto.
    """
    try:
        with zipfile.ZipFile(path) as arquivo:
            nomes = arquivo.namelist()
            defeituoso = arquivo.testzip()
    except zipfile.BadZipFile as erro:
        raise ValueError("não é um arquivo zip válido (download interrompido ou arquivo corrompido)") from erro
    if defeituoso is not None:
        raise ValueError(f"o zip está corrompido: {defeituoso} não passa na verificação de integridade (CRC)")
    membros = {}
    for nome in nomes:
        achado = _FAKEBR_MEMBER.search(nome)
        if achado:
            membros[(achado.group(1), int(achado.group(2)))] = nome
    numeros = {pasta: {n for p, n in membros if p == pasta} for pasta in ("fake", "true")}
    if len(numeros["fake"]) != FAKEBR_PAIRS or len(numeros["true"]) != FAKEBR_PAIRS:
        raise ValueError(f"esperava {FAKEBR_PAIRS} textos falsos e {FAKEBR_PAIRS} verdadeiros em "
                         f"size_normalized_texts/fake/ e true/, e encontrei {len(numeros['fake'])} e "
                         f"{len(numeros['true'])}: o zip está incompleto ou não é o do corpus Fake.br")
    if numeros["fake"] != numeros["true"]:
        sobra = sorted(numeros["fake"] ^ numeros["true"])[:5]
        raise ValueError(f"os textos falsos e verdadeiros não formam pares (números sem par: {sobra}): "
                         f"o zip não é o do corpus Fake.br")
    return membros


def load_fakebr() -> list[dict]:
    """Corpus Fake.br (textos de tamanho normalizado) como lista de {"texto", "rotulo", "par"}.

    rotulo 1 = falsa, 0 = verdadeira; os dois textos de mesmo "par" tratam do mesmo assunto.
    O zip vem do cache, do espelho local (LLM_DADOS_ESPELHO) ou do GitHub, e é conferido pelo conteúdo;
    se não servir, levanta DownloadError explicando o motivo.
    """
    caminho = get_data_file(FAKEBR_ZIP, validate=_fakebr_members, quiet=True)
    membros = _fakebr_members(caminho)
    exemplos = []
    with zipfile.ZipFile(caminho) as arquivo:
        for par in sorted({numero for _, numero in membros}):
            for rotulo, pasta in ((1, "fake"), (0, "true")):
                bruto = arquivo.read(membros[(pasta, par)]).decode("utf-8", errors="replace")
                exemplos.append({"texto": bruto.replace("\r\n", "\n").strip(), "rotulo": rotulo, "par": par})
    return exemplos

def split_by_pair(examples: list[dict], train_frac: float = 0.7, val_frac: float = 0.1,
                  seed: int = 123) -> tuple[list[dict], list[dict], list[dict]]:
    """Divide em (treino, validação, teste) sorteando números de par: os dois textos de um par ficam juntos.

    Cada parte vem na ordem do sorteio (os dois textos de cada par lado a lado), então qualquer trecho inicial dela
    já é uma amostra ao acaso. Usa random.Random(seed), sem mexer no gerador global: mesma semente, mesma divisão.
    """
    if not (0 < train_frac < 1 and 0 <= val_frac < 1 and train_frac + val_frac < 1):
        raise ValueError(f"Frações inválidas: treino={train_frac}, validação={val_frac}. Use valores entre 0 e 1 "
                         f"com soma menor que 1 (o resto vai para o teste).")
    por_par: dict[int, list[dict]] = {}
    for exemplo in examples:
        por_par.setdefault(exemplo["par"], []).append(exemplo)
    pares = sorted(por_par)
    random.Random(seed).shuffle(pares)
    n_train = round(len(pares) * train_frac)
    n_val = round(len(pares) * val_frac)
    fatias = (pares[:n_train], pares[n_train:n_train + n_val], pares[n_train + n_val:])
    return tuple([e for par in fatia for e in por_par[par]] for fatia in fatias)


def sample_pairs(examples: list[dict], num_pairs: int | None, seed: int = 123) -> list[dict]:
    """Amostra sorteada de `num_pairs` pares inteiros (os dois textos de cada um); None = todos."""
    pares = sorted({e["par"] for e in examples})
    if num_pairs is None or num_pairs >= len(pares):
        return list(examples)
    escolhidos = set(random.Random(seed).sample(pares, num_pairs))
    return [e for e in examples if e["par"] in escolhidos]

class FakeNewsDataset(Dataset):
    """Notícias tokenizadas, truncadas em `max_length` tokens e preenchidas com `pad_token_id` até esse tamanho.

    Cada item é (ids de formato (max_length,), rótulo). `lengths` guarda quantos tokens cada texto tinha antes do
    corte. O texto é codificado com disallowed_special=(), então o id de preenchimento nunca aparece no meio dele.
    """

    def __init__(self, examples: list[dict], tokenizer, max_length: int, pad_token_id: int = 50256):
        if max_length < 1:
            raise ValueError(f"max_length precisa ser pelo menos 1 (recebi {max_length}).")
        self.max_length = max_length
        self.pad_token_id = pad_token_id
        self.input_ids, self.labels, self.lengths = [], [], []
        for i, exemplo in enumerate(examples):
            ids = tokenizer.encode(exemplo["texto"], disallowed_special=())
            if not ids:
                raise ValueError(f"O exemplo {i} (par {exemplo.get('par')}) tem texto vazio.")
            self.lengths.append(len(ids))
            ids = ids[:max_length]
            self.input_ids.append(ids + [pad_token_id] * (max_length - len(ids)))
            self.labels.append(int(exemplo["rotulo"]))

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return torch.tensor(self.input_ids[i]), torch.tensor(self.labels[i])

def add_classification_head(model: "GPTModel", num_classes: int = 2, trainable: str = "all") -> "GPTModel":
    """Troca a cabeça de vocabulário por Linear(emb_dim, num_classes) e escolhe o que vai aprender.

    trainable: "head" (só a cabeça nova), "last_block" (último bloco transformer + norma final + cabeça, como no
    livro) ou "all" (o modelo inteiro). Os parâmetros restantes ficam congelados (requires_grad=False).
    """
    opcoes = ("head", "last_block", "all")
    if trainable not in opcoes:
        raise ValueError(f"trainable={trainable!r} não existe. Opções: {', '.join(opcoes)}.")
    for parametro in model.parameters():
        parametro.requires_grad = trainable == "all"
    if trainable == "last_block":
        for parametro in [*model.trf_blocks[-1].parameters(), *model.final_norm.parameters()]:
            parametro.requires_grad = True
    model.out_head = nn.Linear(model.out_head.in_features, num_classes).to(model.tok_emb.weight.device)
    return model


def classifier_logits(model, input_batch: torch.Tensor, pad_token_id: int = 50256) -> torch.Tensor:
    """Logits (lote, classes) lidos na posição do último token real de cada linha (antes do preenchimento)."""
    logits = model(input_batch)                                  # (lote, posições, classes)
    n_reais = (input_batch != pad_token_id).sum(dim=1)           # (lote,)
    ultima = (n_reais - 1).clamp(min=0)
    linhas = torch.arange(input_batch.shape[0], device=input_batch.device)
    return logits[linhas, ultima]                                # (lote, classes)

def calc_loss_batch_classifier(input_batch: torch.Tensor, target_batch: torch.Tensor, model, device,
                               pad_token_id: int = 50256) -> torch.Tensor:
    """Entropia cruzada da classificação em um lote, lida no último token real de cada texto."""
    input_batch, target_batch = input_batch.to(device), target_batch.to(device)
    logits = classifier_logits(model, input_batch, pad_token_id)
    return torch.nn.functional.cross_entropy(logits, target_batch)


def calc_loss_loader_classifier(data_loader, model, device, num_batches: int | None = None,
                                pad_token_id: int = 50256) -> float:
    """Perda média de classificação em até `num_batches` lotes (todos, se None), sem gradiente."""
    if len(data_loader) == 0:
        return float("nan")
    num_batches = len(data_loader) if num_batches is None else min(num_batches, len(data_loader))
    total = 0.0
    with torch.no_grad():
        for i, (input_batch, target_batch) in enumerate(data_loader):
            if i >= num_batches:
                break
            total += calc_loss_batch_classifier(input_batch, target_batch, model, device, pad_token_id).item()
    return total / num_batches


def calc_accuracy_loader(data_loader, model, device, num_batches: int | None = None,
                         pad_token_id: int = 50256) -> float:
    """Fração de acertos em até `num_batches` lotes (todos, se None), com o modelo em modo de avaliação."""
    if len(data_loader) == 0:
        return float("nan")
    num_batches = len(data_loader) if num_batches is None else min(num_batches, len(data_loader))
    estava_treinando = model.training
    model.eval()
    acertos, vistos = 0, 0
    with torch.no_grad():
        for i, (input_batch, target_batch) in enumerate(data_loader):
            if i >= num_batches:
                break
            logits = classifier_logits(model, input_batch.to(device), pad_token_id)
            acertos += (logits.argmax(dim=-1) == target_batch.to(device)).sum().item()
            vistos += target_batch.shape[0]
    model.train(estava_treinando)
    return acertos / vistos

def evaluate_classifier(model, train_loader, val_loader, device, eval_iter: int,
                        pad_token_id: int = 50256) -> tuple[float, float, float, float]:
    """(perda de treino, perda de validação, acurácia de treino, acurácia de validação) em `eval_iter` lotes."""
    model.eval()
    train_loss = calc_loss_loader_classifier(train_loader, model, device, eval_iter, pad_token_id)
    val_loss = calc_loss_loader_classifier(val_loader, model, device, eval_iter, pad_token_id)
    train_acc = calc_accuracy_loader(train_loader, model, device, eval_iter, pad_token_id)
    val_acc = calc_accuracy_loader(val_loader, model, device, eval_iter, pad_token_id)
    model.train()
    return train_loss, val_loss, train_acc, val_acc


def train_classifier_simple(model, train_loader, val_loader, optimizer, device, num_epochs: int, eval_freq: int,
                            eval_iter: int, pad_token_id: int = 50256):
    """Laço de fine-tuning de classificação, com barra de progresso e avaliação a cada `eval_freq` passos.

    Devolve (train_losses, val_losses, train_accs, val_accs, examples_seen): as quatro métricas de cada
    avaliação e quantos exemplos de treino o modelo tinha visto em cada uma.
    """
    train_losses, val_losses, train_accs, val_accs, examples_seen = [], [], [], [], []
    vistos, global_step = 0, -1
    barra = tqdm(total=num_epochs * len(train_loader), desc="fine-tuning")
    for epoch in range(num_epochs):
        model.train()
        for input_batch, target_batch in train_loader:
            optimizer.zero_grad()
            loss = calc_loss_batch_classifier(input_batch, target_batch, model, device, pad_token_id)
            loss.backward()
            optimizer.step()
            vistos += input_batch.shape[0]
            global_step += 1
            barra.update(1)
            if global_step % eval_freq == 0:
                metricas = evaluate_classifier(model, train_loader, val_loader, device, eval_iter, pad_token_id)
                for lista, valor in zip((train_losses, val_losses, train_accs, val_accs), metricas):
                    lista.append(valor)
                examples_seen.append(vistos)
                barra.set_postfix(perda_val=f"{metricas[1]:.3f}", acc_val=f"{metricas[3]:.0%}")
        acc_val = calc_accuracy_loader(val_loader, model, device, pad_token_id=pad_token_id)
        barra.write(f"época {epoch + 1}: acurácia na validação inteira {acc_val:.1%}")
    barra.close()
    return train_losses, val_losses, train_accs, val_accs, examples_seen

def classify_text(text: str, model, tokenizer, device, max_length: int,
                  pad_token_id: int = 50256) -> tuple[str, float]:
    """Classifica uma notícia: devolve ("falsa" ou "verdadeira", probabilidade dessa classe).

    Lê só os primeiros `max_length` tokens (limitados ao contexto do modelo) e avisa quando corta o texto.
    """
    if not isinstance(text, str):
        raise TypeError(f"classify_text espera um texto (str), mas recebeu {type(text).__name__}.")
    if not text.strip():
        raise ValueError("O texto está vazio: escreva a notícia que você quer classificar.")
    limite = min(max_length, model.pos_emb.weight.shape[0])
    ids = tokenizer.encode(text, disallowed_special=())
    if len(ids) > limite:
        print(f"Aviso: o texto tem {len(ids)} tokens; o classificador lê só os primeiros {limite}.")
        ids = ids[:limite]
    entrada = torch.tensor([ids + [pad_token_id] * (limite - len(ids))], device=device)
    estava_treinando = model.training
    model.eval()
    with torch.no_grad():
        probs = torch.softmax(classifier_logits(model, entrada, pad_token_id), dim=-1)[0]
    model.train(estava_treinando)
    classe = int(probs.argmax())
    return FAKEBR_LABELS[classe], probs[classe].item()


# ======================================================================
# Capítulo 07-instrucoes
# ======================================================================

INSTRUCTION_SETTINGS = {
    "rapido": {"base_source": "auto", "preambulo": False, "train_open": False, "mask_prompt": True,
               "batch_size": 8, "lr": 3e-3, "weight_decay": 0.1, "num_epochs": 20, "max_seconds": 160,
               "eval_freq": 100, "eval_iter": 3, "allowed_max_length": 128, "max_new_tokens": 10},
    "completo": {"base_source": "gpt2", "preambulo": True, "train_open": True, "mask_prompt": True,
                 "batch_size": 8, "lr": 5e-5, "weight_decay": 0.1, "num_epochs": 3, "max_seconds": 1800,
                 "eval_freq": 50, "eval_iter": 5, "allowed_max_length": 1024, "max_new_tokens": 10},
}

OPEN_TASK = "aberta"   # tarefa das perguntas abertas: mostradas, mas sem nota automática


def instruction_data_path() -> Path:
    """Caminho do conjunto de instruções do curso (`07-instrucoes/dados/instrucoes.json`)."""
    return project_root() / "07-instrucoes" / "dados" / "instrucoes.json"


def load_instruction_data(path: str | Path | None = None) -> list[dict]:
    """Todos os exemplos do conjunto de instruções (dicionários com instrucao, entrada, saida, tarefa, particao)."""
    path = Path(path) if path is not None else instruction_data_path()
    if not path.is_file():
        raise FileNotFoundError(f"Não encontrei o conjunto de instruções em {path}. Ele vem com o repositório "
                                f"(07-instrucoes/dados/); para recriá-lo, rode `python gerar_instrucoes.py` "
                                f"nessa pasta.")
    return json.loads(path.read_text(encoding="utf-8"))


def load_instruction_splits(path: str | Path | None = None) -> tuple[list[dict], list[dict], list[dict]]:
    """As partições (treino, validação, teste) do conjunto de instruções, na ordem do arquivo."""
    dados = load_instruction_data(path)
    return tuple([e for e in dados if e["particao"] == p] for p in ("treino", "validacao", "teste"))

PREAMBULO = ("Abaixo está uma instrução que descreve uma tarefa. "
             "Escreva uma resposta que complete o pedido de forma adequada.")
RESPONSE_HEADER = "\n\n### Resposta:"


def format_input(entry: dict, preambulo: bool | None = None) -> str:
    """Prompt no formato Alpaca em português, SEM a resposta: (preâmbulo +) instrução (+ entrada, se houver).

    `preambulo=None` usa o padrão do modo (INSTRUCTION_SETTINGS); True/False força. O texto completo de um
    exemplo é `format_input(entry) + RESPONSE_HEADER + " " + entry["saida"]`.
    """
    if preambulo is None:
        preambulo = INSTRUCTION_SETTINGS[get_mode()]["preambulo"]
    texto = f"### Instrução: {entry['instrucao']}"
    if entry.get("entrada"):
        texto += f"\n\n### Entrada: {entry['entrada']}"
    return f"{PREAMBULO}\n\n{texto}" if preambulo else texto

def tokenize_example(entry: dict, tokenizer, preambulo: bool | None = None) -> tuple[list[int], int]:
    """Ids do exemplo completo (prompt + " " + resposta) e quantos deles são do prompt.

    Prompt e resposta são tokenizados separadamente e concatenados: é exatamente o que o modelo vê na
    geração, quando recebe o prompt e produz a resposta token a token.
    """
    prompt_ids = tokenizer.encode(format_input(entry, preambulo) + RESPONSE_HEADER)
    resposta_ids = tokenizer.encode(" " + entry["saida"])
    return prompt_ids + resposta_ids, len(prompt_ids)


class InstructionDataset(Dataset):
    """Exemplos de instrução tokenizados. Cada item é (ids do texto completo, nº de tokens do prompt)."""

    def __init__(self, data: list[dict], tokenizer, preambulo: bool | None = None):
        self.data = data
        self.encoded = [tokenize_example(e, tokenizer, preambulo) for e in data]

    def __len__(self) -> int:
        return len(self.encoded)

    def __getitem__(self, i: int) -> tuple[list[int], int]:
        return self.encoded[i]


def custom_collate_fn(batch, pad_token_id: int = 50256, ignore_index: int = -100,
                      allowed_max_length: int | None = None, mask_prompt: bool = False, device="cpu"):
    """Monta (entradas, alvos) de formato (lote, n) a partir de itens (ids, tamanho_do_prompt) ou só ids.

    Completa com `pad_token_id`, desloca os alvos de uma posição, troca o padding dos alvos por `ignore_index`
    (menos o primeiro, que marca o fim da resposta) e, com `mask_prompt=True`, ignora também os alvos do prompt.
    """
    itens = [item if isinstance(item, tuple) else (item, None) for item in batch]
    if mask_prompt and any(n is None for _, n in itens):
        raise ValueError("mask_prompt=True precisa saber o tamanho do prompt: passe itens (ids, tamanho_do_prompt), "
                         "como os do InstructionDataset.")
    maior = max(len(ids) for ids, _ in itens) + 1          # +1: o <|endoftext|> de cada sequência
    entradas, alvos = [], []
    for ids, n_prompt in itens:
        sequencia = list(ids) + [pad_token_id] * (maior - len(ids))
        entrada = torch.tensor(sequencia[:-1])
        alvo = torch.tensor(sequencia[1:])
        alvo[len(ids):] = ignore_index                     # alvo[len(ids) - 1] é o fim de texto: fica
        if mask_prompt:
            alvo[:n_prompt - 1] = ignore_index             # alvos que ainda são tokens do prompt
        if allowed_max_length is not None:
            entrada, alvo = entrada[:allowed_max_length], alvo[:allowed_max_length]
        entradas.append(entrada)
        alvos.append(alvo)
    return torch.stack(entradas).to(device), torch.stack(alvos).to(device)


def create_instruction_dataloader(data: list[dict], batch_size: int = 8, shuffle: bool = True,
                                  drop_last: bool = True, preambulo: bool | None = None, mask_prompt: bool = False,
                                  allowed_max_length: int | None = None, tokenizer=None) -> DataLoader:
    """DataLoader de lotes de instrução prontos para o `train_model_simple` do capítulo 05."""
    tokenizer = tokenizer or tiktoken.get_encoding("gpt2")
    collate = partial(custom_collate_fn, mask_prompt=mask_prompt, allowed_max_length=allowed_max_length)
    return DataLoader(InstructionDataset(data, tokenizer, preambulo), batch_size=batch_size, shuffle=shuffle,
                      drop_last=drop_last, collate_fn=collate)

def normalize_answer(texto: str, ignore_accents: bool = False) -> str:
    """Normaliza uma resposta para comparação: minúsculas, espaços colapsados, sem pontuação nas bordas
    e, com `ignore_accents=True`, sem acentos."""
    texto = unicodedata.normalize("NFC", texto).lower()
    texto = re.sub(r"\s+", " ", texto).strip(string.punctuation + " …«»“”‘’")
    if ignore_accents:
        texto = "".join(c for c in unicodedata.normalize("NFD", texto) if not unicodedata.combining(c))
    return texto


def exact_match(prediction: str, reference: str, ignore_accents: bool = False) -> bool:
    """True se as duas respostas ficam iguais depois de `normalize_answer`."""
    return normalize_answer(prediction, ignore_accents) == normalize_answer(reference, ignore_accents)


def extract_response(texto_gerado: str) -> str:
    """A resposta dentro de um texto gerado: o que vem depois de '### Resposta:', até o fim de texto
    ou a primeira quebra de linha."""
    resposta = texto_gerado.split(RESPONSE_HEADER.strip())[-1]
    resposta = resposta.split("<|endoftext|>")[0].strip()
    return resposta.split("\n")[0].strip()


def generate_response(model, entry: dict, tokenizer=None, preambulo: bool | None = None,
                      max_new_tokens: int = 40, device=None) -> str:
    """Gera (de forma gulosa) a resposta do modelo para um exemplo e a devolve já extraída."""
    tokenizer = tokenizer or tiktoken.get_encoding("gpt2")
    device = device or next(model.parameters()).device
    prompt = format_input(entry, preambulo) + RESPONSE_HEADER
    ids = text_to_token_ids(prompt, tokenizer).to(device)
    model.eval()
    saida = generate(model, ids, max_new_tokens, context_size=model.pos_emb.weight.shape[0], eos_id=50256)
    return extract_response(token_ids_to_text(saida, tokenizer))


def evaluate_instructions(model, entries: list[dict], tokenizer=None, preambulo: bool | None = None,
                          max_new_tokens: int = 10, device=None, desc: str = "avaliando") -> list[dict]:
    """Gera a resposta de cada exemplo. Devolve cópias dos exemplos com a chave 'resposta' acrescentada."""
    from tqdm.auto import tqdm

    return [{**e, "resposta": generate_response(model, e, tokenizer, preambulo, max_new_tokens, device)}
            for e in tqdm(entries, desc=desc)]


def score_by_task(results: list[dict], ignore_accents: bool = False) -> dict:
    """Acerto exato por tarefa e geral, só nos exemplos verificáveis (tarefa diferente de 'aberta')."""
    acertos: dict[str, list[bool]] = {}
    for r in results:
        if r["tarefa"] != OPEN_TASK:
            acertos.setdefault(r["tarefa"], []).append(exact_match(r["resposta"], r["saida"], ignore_accents))
    todos = [a for lista in acertos.values() for a in lista]
    return {"geral": sum(todos) / max(len(todos), 1),
            "por_tarefa": {t: sum(lista) / len(lista) for t, lista in acertos.items()}}

def calc_loss_batch_masked(input_batch: torch.Tensor, target_batch: torch.Tensor, model, device,
                           ignore_index: int = -100) -> torch.Tensor:
    """A mesma perda de `calc_loss_batch`, calculando a cabeça de saída só onde o alvo não é `ignore_index`.

    Percorre as camadas do GPTModel como o `forward` dele, mas entrega à cabeça (a parte mais cara) só as
    posições que entram na perda — com o prompt mascarado, poucas por exemplo.
    """
    input_batch, target_batch = input_batch.to(device), target_batch.to(device)
    posicoes = torch.arange(input_batch.shape[1], device=device)
    x = model.drop_emb(model.tok_emb(input_batch) + model.pos_emb(posicoes))
    x = model.final_norm(model.trf_blocks(x))               # (lote, posições, emb_dim)
    contam = target_batch != ignore_index                     # (lote, posições)
    logits = model.out_head(x[contam])                        # (posições que contam, vocab_size)
    return torch.nn.functional.cross_entropy(logits, target_batch[contam])

def train_instruction_model(model, train_loader, val_loader, optimizer, device, num_epochs: int, eval_freq: int,
                            eval_iter: int, sample_entries: list[dict], tokenizer,
                            max_seconds: float | None = None, preambulo: bool | None = None):
    """Laço do ajuste fino por instruções: o `train_model_simple` do capítulo 05 com a perda mascarada.

    Avalia a cada `eval_freq` passos; ao fim de cada época, imprime as respostas do modelo a `sample_entries`.
    Devolve (train_losses, val_losses, track_tokens_seen).
    """
    train_losses, val_losses, track_tokens_seen = [], [], []
    tokens_seen, global_step = 0, -1
    inicio = time.perf_counter()
    acabou_tempo = False
    barra = tqdm(total=num_epochs * len(train_loader), desc="ajuste fino", unit="passo")
    for epoch in range(num_epochs):
        model.train()
        for input_batch, target_batch in train_loader:
            optimizer.zero_grad()
            loss = calc_loss_batch_masked(input_batch, target_batch, model, device)
            loss.backward()
            optimizer.step()
            tokens_seen += input_batch.numel()
            global_step += 1
            barra.update(1)
            acabou_tempo = max_seconds is not None and time.perf_counter() - inicio > max_seconds
            if global_step % eval_freq == 0 or acabou_tempo:
                train_loss, val_loss = evaluate_model(model, train_loader, val_loader, device, eval_iter)
                train_losses.append(train_loss)
                val_losses.append(val_loss)
                track_tokens_seen.append(tokens_seen)
                barra.set_postfix(treino=f"{train_loss:.3f}", val=f"{val_loss:.3f}")
            if acabou_tempo:
                break
        respostas = [generate_response(model, e, tokenizer, preambulo, max_new_tokens=10, device=device)
                     for e in sample_entries]
        barra.write(f"época {epoch + 1:2d}, passo {global_step:4d}: " + " | ".join(map(repr, respostas)))
        if acabou_tempo:
            barra.write(f"tempo esgotado ({max_seconds:.0f} s): treino interrompido.")
            break
    barra.close()
    return train_losses, val_losses, track_tokens_seen


def instruction_checkpoint_path(mode: str | None = None) -> Path:
    """Onde o capítulo 07 guarda o modelo ajustado para instruções de cada modo."""
    return artifacts_dir() / "checkpoints" / f"07-instrucoes-{mode or get_mode()}.pt"


def finetune_instructions(model, train_data: list[dict], val_data: list[dict], mode: str | None = None,
                          device=None, seed: int = 123) -> dict:
    """Ajuste fino por instruções com a configuração do modo (INSTRUCTION_SETTINGS).

    Treina `model` no lugar e devolve o histórico: perdas de treino/validação, tokens vistos e tempo.
    """
    mode = mode or get_mode()
    device = device or get_device()
    cfg = INSTRUCTION_SETTINGS[mode]
    if not cfg["train_open"]:
        train_data = [e for e in train_data if e["tarefa"] != OPEN_TASK]
        val_data = [e for e in val_data if e["tarefa"] != OPEN_TASK]
    set_seed(seed)
    tokenizer = tiktoken.get_encoding("gpt2")
    opcoes = {"preambulo": cfg["preambulo"], "mask_prompt": cfg["mask_prompt"],
              "allowed_max_length": cfg["allowed_max_length"], "tokenizer": tokenizer}
    train_loader = create_instruction_dataloader(train_data, cfg["batch_size"], shuffle=True, drop_last=True, **opcoes)
    val_loader = create_instruction_dataloader(val_data, cfg["batch_size"], shuffle=False, drop_last=False, **opcoes)
    model.to(device)
    # fused=True faz todas as contas do AdamW de uma vez (CPU e CUDA): no modo rápido, o passo cai quase à metade
    fundido = torch.device(device).type in ("cpu", "cuda")
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"], fused=fundido)
    amostras = [next(e for e in val_data if e["tarefa"] == t) for t in ("capital", "sentimento", "maior_numero")]
    inicio = time.perf_counter()
    train_losses, val_losses, tokens_seen = train_instruction_model(
        model, train_loader, val_loader, optimizer, device, cfg["num_epochs"], cfg["eval_freq"], cfg["eval_iter"],
        amostras, tokenizer, max_seconds=cfg["max_seconds"], preambulo=cfg["preambulo"])
    model.eval()
    return {"train_losses": train_losses, "val_losses": val_losses, "tokens_seen": tokens_seen,
            "tempo_s": time.perf_counter() - inicio}


def load_instruction_model(mode: str | None = None, device=None):
    """Modelo ajustado para instruções. Devolve (model, config, fonte).

    Usa o checkpoint do capítulo 07 deste modo, se existir; senão, faz agora o ajuste fino do modelo de
    `load_base_model` com a configuração do modo (no modo rápido, cerca de dois minutos) e o salva.
    """
    mode = mode or get_mode()
    device = device or get_device()
    caminho = instruction_checkpoint_path(mode)
    if caminho.exists():
        try:
            model, pacote = load_checkpoint(caminho, device)
            print(f"Modelo de instruções: checkpoint do capítulo 07 ({caminho.name}).")
            return model.eval(), pacote["config"], "checkpoint"
        except ValueError as erro:
            print(f"O checkpoint {caminho.name} não serve ({erro}); vou ajustar um modelo agora.")
    model, config, fonte_base = load_base_model(mode, device, source=INSTRUCTION_SETTINGS[mode]["base_source"])
    print(f"Modelo de instruções: sem checkpoint do capítulo 07; ajustando o modelo base ({fonte_base}) agora "
          f"(até {INSTRUCTION_SETTINGS[mode]['max_seconds']} s)...")
    train_data, val_data, _ = load_instruction_splits()
    historico = finetune_instructions(model, train_data, val_data, mode, device)
    save_checkpoint(caminho, model, None, config, historico=historico, fonte_base=fonte_base)
    return model.eval(), config, "ajuste"
