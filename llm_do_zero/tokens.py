"""Capítulo 02-tokens: o código que o capítulo ensina e os seguintes reutilizam.

ARQUIVO GERADO por `python ferramentas/exportar.py` a partir das células `# exportar` de
`02-tokens/notebook.ipynb`. Não edite à mão: mude o notebook e gere de novo.
"""
from collections import Counter, defaultdict
from functools import lru_cache
import heapq
import json
from pathlib import Path
import re
import sys
import unicodedata

import tiktoken
import torch
from torch.utils.data import DataLoader, Dataset

from llm_do_zero.oficina import cache_dir
from llm_do_zero.estatistica import load_text, MACHADO_BOOKS


# %% 02-tokens/notebook.ipynb · célula 25
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


# %% 02-tokens/notebook.ipynb · célula 28
def train_bpe_naive(text: str, n_merges: int) -> dict[tuple[int, int], int]:
    """Treino de BPE ingênuo: reconta todos os pares de todos os pedaços depois de cada fusão.

    Devolve as fusões, (id, id) -> id do token novo, na ordem em que foram aprendidas. Segue a mesma regra de
    `train_bpe` (o par mais frequente; empate: o de menores ids), só que devagar: serve de referência.
    """
    words = [list(piece.encode("utf-8")) for piece in gpt2_pretokenizer().findall(text)]
    vocab = {b: bytes([b]) for b in range(256)}
    ids_of = {tok: i for i, tok in vocab.items()}
    merges: dict[tuple[int, int], int] = {}
    while len(merges) < n_merges:
        counts = Counter()
        for word in words:
            counts.update(zip(word, word[1:]))
        if not counts:
            break  # todo pedaço já virou um token só
        pair = min(counts, key=lambda p: (-counts[p], p))
        new_bytes = vocab[pair[0]] + vocab[pair[1]]
        new_id = ids_of.setdefault(new_bytes, len(vocab))  # bytes já conhecidos? o mesmo id
        vocab[new_id] = new_bytes
        merges[pair] = new_id
        merged_words = []
        for word in words:
            out, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == pair:
                    out.append(new_id)
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            merged_words.append(out)
        words = merged_words
    return merges


# %% 02-tokens/notebook.ipynb · célula 32
def merge_pair(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
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


def split_special(text: str, specials: set[str]) -> list[str]:
    """Separa o texto nos tokens especiais dados, mantendo-os como partes próprias."""
    if not specials:
        return [text]
    pattern = "(" + "|".join(re.escape(s) for s in sorted(specials, key=len, reverse=True)) + ")"
    return [part for part in re.split(pattern, text) if part]


def train_bpe(text: str, n_merges: int, special_tokens: tuple[str, ...] = ()) -> dict[tuple[int, int], int]:
    """Treino de BPE rápido: as mesmas fusões de `train_bpe_naive`, com pedaços únicos, contagens incrementais e heap.

    Devolve as fusões, (id, id) -> id do token novo, na ordem em que foram aprendidas. Os `special_tokens` são
    cortados do texto antes do treino (nenhuma fusão atravessa um `<|endoftext|>`).
    """
    # 1. Pré-tokeniza e conta pedaços iguais uma vez só ("␣que" aparece milhares de vezes, vira 1 entrada).
    pieces = Counter()
    for part in split_special(text, set(special_tokens)):
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
            new = merge_pair(old, pair, new_id)
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
    return merges


# %% 02-tokens/notebook.ipynb · célula 36
class BPETokenizerSimple:
    """Tokenizador BPE (byte pair encoding) em nível de bytes, com a pré-tokenização do GPT-2.

    - `BPETokenizerSimple().train(texto, vocab_size)` aprende as fusões (merges) num texto (com `train_bpe`);
    - `encode(texto, allowed_special=...)` / `decode(ids)`: ida e volta exata para qualquer texto Unicode.

    `vocab` guarda id -> bytes; `merges` guarda (id, id) -> id do token novo, na ordem em que foram aprendidas.
    A classe completa do curso, `BPETokenizer` (seção 3), herda tudo isto e acrescenta o GPT-2 e os arquivos.
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

    def train(self, text: str, vocab_size: int, special_tokens: tuple[str, ...] = ("<|endoftext|>",)):
        """Aprende `vocab_size - 256 - len(special_tokens)` fusões em `text`; devolve o próprio tokenizador.

        Mesmo texto e mesmo `vocab_size`, mesmo resultado; e as primeiras fusões de um vocabulário maior são
        exatamente as de um menor. Os tokens especiais ficam com os últimos ids.
        """
        n_merges = vocab_size - 256 - len(special_tokens)
        if n_merges < 0:
            raise ValueError(f"vocab_size={vocab_size} é pequeno demais: só os 256 bytes e os "
                             f"{len(special_tokens)} tokens especiais já ocupam {256 + len(special_tokens)}.")
        if not text:
            raise ValueError("O texto de treino está vazio.")
        self.merges = train_bpe(text, n_merges, special_tokens)
        self.vocab = {b: bytes([b]) for b in range(256)}
        for (left, right), new in self.merges.items():
            self.vocab[new] = self.vocab[left] + self.vocab[right]
        self.special_tokens = {tok: len(self.vocab) + k for k, tok in enumerate(special_tokens)}
        for tok, i in self.special_tokens.items():
            self.vocab[i] = tok.encode("utf-8")
        self._prepare()
        return self

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
            for part in split_special(text, allowed & set(self.special_tokens)):
                if part in allowed and part in self.special_tokens:
                    out.append(self.special_tokens[part])
                else:
                    out.extend(self.encode_ordinary(part))
            return out
        except UnicodeEncodeError as erro:
            raise ValueError(f"O texto tem um caractere que não existe em UTF-8 ({erro.object[erro.start]!r}, "
                             "um 'surrogate' isolado) e por isso não vira bytes.") from erro

    def decode(self, ids) -> str:
        """Ids -> texto. Bytes que não formam UTF-8 válido (um caractere cortado ao meio) viram '�'."""
        try:
            data = b"".join(self.vocab[int(i)] for i in ids)
        except KeyError as erro:
            raise ValueError(f"O id {erro.args[0]} não existe neste vocabulário (0 a {self.n_vocab - 1}).") from None
        return data.decode("utf-8", errors="replace")


# %% 02-tokens/notebook.ipynb · célula 46
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


# %% 02-tokens/notebook.ipynb · célula 49
class BPETokenizer(BPETokenizerSimple):
    """O tokenizador BPE do curso: o `BPETokenizerSimple` (treino, `encode`, `decode`) e mais três coisas.

    - `BPETokenizer.from_gpt2(vocab_bpe, encoder_json)` carrega as fusões do GPT-2 (ids idênticos aos do tiktoken);
    - `save`/`load` (e `to_dict`/`from_dict`) guardam as fusões em JSON;
    - `to_tiktoken()` roda as mesmas fusões no motor rápido do tiktoken.
    """

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

    # ---------------------------------------------------------------- guardar, ler e o motor rápido
    def to_dict(self) -> dict:
        """O tokenizador como dicionário simples (só listas, inteiros e textos): as fusões em ordem e os especiais."""
        return {"formato": "BPETokenizer", "versao": 1,
                "merges": [[left, right, new] for (left, right), new in self.merges.items()],
                "special_tokens": dict(self.special_tokens)}

    @classmethod
    def from_dict(cls, data: dict) -> "BPETokenizer":
        """Refaz o tokenizador a partir de `to_dict()`; os bytes de cada token são recompostos pelas fusões."""
        if not isinstance(data, dict) or data.get("formato") != "BPETokenizer":
            raise ValueError("Isto não é um tokenizador salvo por BPETokenizer.to_dict().")
        tokenizer = cls()
        try:
            for left, right, new in data["merges"]:
                tokenizer.merges[(left, right)] = new
                tokenizer.vocab[new] = tokenizer.vocab[left] + tokenizer.vocab[right]
            tokenizer.special_tokens = {tok: int(i) for tok, i in data["special_tokens"].items()}
        except (KeyError, TypeError, ValueError) as erro:
            raise ValueError(f"Tokenizador salvo incompleto ou corrompido ({erro!r}).") from erro
        for tok, i in tokenizer.special_tokens.items():
            tokenizer.vocab[i] = tok.encode("utf-8")
        tokenizer._prepare()
        return tokenizer

    def save(self, path) -> Path:
        """Grava `to_dict()` em JSON, de forma atômica (um arquivo pela metade nunca fica no lugar do bom)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporario = path.with_name(path.name + ".part")
        temporario.write_text(json.dumps(self.to_dict(), separators=(",", ":")), encoding="utf-8")
        temporario.replace(path)
        return path

    @classmethod
    def load(cls, path) -> "BPETokenizer":
        """Lê um tokenizador gravado por `save`; arquivo ilegível -> ValueError que diz o caminho."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as erro:
            raise ValueError(f"Não consegui ler o tokenizador {path} ({type(erro).__name__}).") from erro
        return cls.from_dict(data)

    def to_tiktoken(self, name: str = "bpe-do-curso") -> tiktoken.Encoding:
        """As mesmas fusões rodando no motor do `tiktoken` (Rust): ids idênticos aos do nosso `encode`.

        O tiktoken não guarda pares: guarda o posto (rank) de cada sequência de bytes e, dentro de um pedaço, junta
        sempre o par vizinho cujo resultado tem o menor posto. Cada token nosso nasce de uma fusão, na ordem dos
        ids, então o posto de um token é o próprio id — e as duas regras fazem as mesmas fusões.
        """
        especiais = set(self.special_tokens.values())
        ranks = {token: i for i, token in self.vocab.items() if i not in especiais}
        return tiktoken.Encoding(name, pat_str=GPT2_SPLIT_PATTERN, mergeable_ranks=ranks,
                                 special_tokens=dict(self.special_tokens))


# %% 02-tokens/notebook.ipynb · célula 65
COURSE_VOCAB_SIZE = 8192
HELD_OUT_BOOKS = ("memorial-de-aires", "reliquias")


def course_bpe(vocab_size: int = COURSE_VOCAB_SIZE) -> BPETokenizer:
    """O BPE do curso: treinado nos livros de Machado fora HELD_OUT_BOOKS, lido do cache a partir da 2ª vez.

    O treino é determinístico, então treinar de novo dá as mesmas fusões; um arquivo de cache ilegível é
    refeito (com um aviso) em vez de travar o capítulo.
    """
    caminho = cache_dir() / "tokenizadores" / f"machado-{vocab_size}.json"
    if caminho.is_file():
        try:
            return BPETokenizer.load(caminho)
        except ValueError as erro:
            print(f"{erro} Vou treinar o tokenizador de novo.")
    livros = [livro for livro in MACHADO_BOOKS if livro not in HELD_OUT_BOOKS]
    texto = "<|endoftext|>".join(load_text(livro) for livro in livros)
    bpe = BPETokenizer().train(texto, vocab_size=vocab_size)
    bpe.save(caminho)
    return bpe


@lru_cache(maxsize=None)
def course_tokenizer(vocab_size: int = COURSE_VOCAB_SIZE) -> tiktoken.Encoding:
    """O tokenizador do curso no motor do tiktoken (`encode`, `decode`, `n_vocab`, `eot_token`)."""
    return course_bpe(vocab_size).to_tiktoken(f"machado-{vocab_size}")


# %% 02-tokens/notebook.ipynb · célula 75
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


# %% 02-tokens/notebook.ipynb · célula 83
def pad_batch(sequences: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Completa sequências de ids com `pad_id`, à direita, até o tamanho da maior.

    Devolve `(ids, mask)`, os dois de formato (lote, tamanho da maior); `mask` é True onde há token de verdade.
    """
    if not sequences:
        raise ValueError("O lote está vazio: passe ao menos uma sequência.")
    longest = max(len(seq) for seq in sequences)
    ids = torch.full((len(sequences), longest), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), longest), dtype=torch.bool)
    for row, seq in enumerate(sequences):
        ids[row, :len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[row, :len(seq)] = True
    return ids, mask


# %% 02-tokens/notebook.ipynb · célula 92
def cooccurrence_counts(ids: torch.Tensor, vocab_size: int, window: int) -> torch.Tensor:
    """Matriz (vocab_size, vocab_size): quantas vezes j aparece a até `window` posições de i, nos dois sentidos.

    Ids negativos marcam palavras fora do vocabulário: ocupam a sua posição no texto, mas não são contados.
    """
    counts = torch.zeros(vocab_size * vocab_size, dtype=torch.float64)
    for offset in range(1, window + 1):
        left, right = ids[:-offset], ids[offset:]
        kept = (left >= 0) & (right >= 0)
        counts += torch.bincount(left[kept] * vocab_size + right[kept], minlength=vocab_size ** 2).double()
    counts = counts.view(vocab_size, vocab_size)
    return counts + counts.T


def ppmi(counts: torch.Tensor) -> torch.Tensor:
    """PPMI de uma matriz de coocorrências: max(0, log P(i, j) / (P(i) P(j))); onde a contagem é 0, dá 0."""
    total = counts.sum()
    p_row = counts.sum(dim=1, keepdim=True) / total
    p_col = counts.sum(dim=0, keepdim=True) / total
    pmi = torch.log(counts / total / (p_row * p_col))
    return torch.where(counts > 0, pmi, torch.zeros_like(pmi)).clamp(min=0)


# %% 02-tokens/notebook.ipynb · célula 103
def sinusoidal_position_encoding(context_length: int, emb_dim: int, base: float = 10000.0) -> torch.Tensor:
    """Tabela fixa (context_length, emb_dim) de posições senoidais, a do Transformer original.

    Dimensão 2i: sin(p * w_i); dimensão 2i + 1: cos(p * w_i), com w_i = base ** (-2i / emb_dim).
    """
    if emb_dim % 2:
        raise ValueError(f"emb_dim={emb_dim} precisa ser par: as dimensões andam em pares (seno, cosseno).")
    positions = torch.arange(context_length, dtype=torch.float32).unsqueeze(1)           # (T, 1)
    frequencies = base ** (-torch.arange(0, emb_dim, 2, dtype=torch.float32) / emb_dim)  # (d/2,)
    angles = positions * frequencies                                                     # (T, d/2)
    table = torch.empty(context_length, emb_dim)
    table[:, 0::2] = torch.sin(angles)
    table[:, 1::2] = torch.cos(angles)
    return table


# %% 02-tokens/notebook.ipynb · célula 109
# O que a execução deste capítulo tem de reproduzir (capítulo 00, seção 8); o tempo medido não se compara.
TOKENS_CHECKS = {
    "capitulo": "02-tokens",
    "tolerancias": {"tiktoken_vezes_mais_rapido": None, "tiktoken_vezes_mais_rapido_cache_cheio": None},
    "conclusoes": {"o nosso BPE com os merges do GPT-2 dá os ids do tiktoken": "ids_identicos_ao_tiktoken",
                   "o tokenizador do curso dá os mesmos ids nos dois motores": "tokenizador_do_curso_ids_identicos",
                   "o tiktoken é mais rápido que o nosso BPE em Python": "tiktoken_vezes_mais_rapido > 1",
                   "o BPE do curso corta o português em menos tokens que o do GPT-2":
                       "m('tokens_por_palavra_bpe.8192') < tokens_por_palavra_gpt2"},
}
