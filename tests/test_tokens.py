"""Capítulo 02: BPETokenizer (treino, ida e volta, GPT-2 idêntico ao tiktoken), GPTDataset e create_dataloader."""
import math
import random

import pytest
import tiktoken
import torch

from llm_do_zero.oficina import get_data_file
from llm_do_zero.estatistica import load_text, MACHADO_BOOKS
from llm_do_zero import tokens
from llm_do_zero.tokens import (BPETokenizer, COURSE_VOCAB_SIZE, cooccurrence_counts, course_bpe, course_tokenizer,
                                create_dataloader, gpt2_pretokenizer, GPTDataset, HELD_OUT_BOOKS, pad_batch, ppmi,
                                sinusoidal_position_encoding, train_bpe_naive)

# Faixas de códigos Unicode estáveis há muitas versões (o tiktoken e o Python podem ter tabelas Unicode de
# versões diferentes; caracteres recém-criados poderiam ser classificados de outro jeito).
FAIXAS = [(0x20, 0x7F), (0xA0, 0x250), (0x300, 0x370), (0x370, 0x400), (0x400, 0x500), (0x590, 0x700),
          (0x900, 0x980), (0xE00, 0xE80), (0x2000, 0x2070), (0x2100, 0x2200), (0x2460, 0x24FF), (0x3000, 0x3100),
          (0x4E00, 0x9FFF), (0xAC00, 0xD7A3), (0x1F300, 0x1F650), (0x1F900, 0x1F9FF)]
# Espaços e quase-espaços que distinguem o \s do Unicode do \s do módulo `re`, números "não decimais", marcas.
EXTRAS = ("\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f\x85\xa0\u1680\u180e\u200b\u200d\u2028\u2029\u202f\u205f\u3000\ufeff"
          "²³½¾Ⅻⅻ①٣\u0301\u0327")
COMUNS = " aeiouqstdmlvrecçãõéáíóú'\n0123456789.,;-—"


def texto_aleatorio(sorteio: random.Random) -> str:
    pedacos = []
    for _ in range(sorteio.randint(1, 40)):
        r = sorteio.random()
        if r < 0.35:
            pedacos.append(sorteio.choice(COMUNS))
        elif r < 0.5:
            pedacos.append(sorteio.choice(EXTRAS))
        else:
            inicio, fim = sorteio.choice(FAIXAS)
            pedacos.append(chr(sorteio.randrange(inicio, fim)))
    return "".join(pedacos)


@pytest.fixture(scope="module")
def tiktoken_gpt2():
    return tiktoken.get_encoding("gpt2")


@pytest.fixture(scope="module")
def nosso_gpt2():
    return BPETokenizer.from_gpt2(get_data_file("gpt2/vocab.bpe", quiet=True),
                                  get_data_file("gpt2/encoder.json", quiet=True))


@pytest.fixture(scope="module")
def texto_treino():
    return load_text("domCasmurro")[:150_000]


@pytest.fixture(scope="module")
def treinado(texto_treino):
    return BPETokenizer().train(texto_treino, vocab_size=700)


@pytest.fixture(scope="module")
def bpe_do_curso():
    return course_bpe()


@pytest.fixture(scope="module")
def tiktoken_do_curso():
    return course_tokenizer()


def test_gpt2_tamanhos(nosso_gpt2, tiktoken_gpt2):
    assert nosso_gpt2.n_vocab == tiktoken_gpt2.n_vocab == 50257
    assert len(nosso_gpt2.merges) == 50000
    assert nosso_gpt2.special_tokens == {"<|endoftext|>": 50256}


def test_gpt2_identico_ao_tiktoken_em_machado(nosso_gpt2, tiktoken_gpt2):
    sorteio = random.Random(2024)
    for livro in MACHADO_BOOKS:
        texto = load_text(livro)
        for _ in range(2):
            inicio = sorteio.randrange(0, len(texto) - 6000)
            trecho = texto[inicio:inicio + 6000]
            assert nosso_gpt2.encode(trecho) == tiktoken_gpt2.encode(trecho), livro


def test_gpt2_identico_ao_tiktoken_em_unicode_aleatorio(nosso_gpt2, tiktoken_gpt2):
    sorteio = random.Random(7)
    for _ in range(3000):
        s = texto_aleatorio(sorteio)
        assert nosso_gpt2.encode(s) == tiktoken_gpt2.encode(s), repr(s)


def test_gpt2_identico_com_token_especial(nosso_gpt2, tiktoken_gpt2):
    s = "fim do livro<|endoftext|>início do outro <|endoftext|>"
    for permitidos in ({"<|endoftext|>"}, "all"):
        assert nosso_gpt2.encode(s, allowed_special=permitidos) == tiktoken_gpt2.encode(s, allowed_special=permitidos)
    assert nosso_gpt2.encode_ordinary(s) == tiktoken_gpt2.encode_ordinary(s)


def test_ida_e_volta_exata(nosso_gpt2, treinado):
    sorteio = random.Random(11)
    dificeis = ["", " ", "\n\n\n", "Ação! 🦜🇧🇷👩🏽‍💻 漢字 한국어\t\t  x   \n", "e\u0301 ç ã", "  fim  "]
    for s in dificeis + [texto_aleatorio(sorteio) for _ in range(1000)]:
        for tok in (nosso_gpt2, treinado):
            assert tok.decode(tok.encode(s)) == s, repr(s)


def test_treino_deterministico_e_prefixo(texto_treino, treinado):
    de_novo = BPETokenizer().train(texto_treino, vocab_size=700)
    assert de_novo.merges == treinado.merges and de_novo.vocab == treinado.vocab
    assert list(de_novo.merges) == list(treinado.merges)  # mesma ordem
    assert treinado.n_vocab == 700 and len(treinado.merges) == 700 - 256 - 1
    assert treinado.special_tokens == {"<|endoftext|>": 699}
    menor = BPETokenizer().train(texto_treino, vocab_size=400)
    assert list(treinado.merges.items())[:len(menor.merges)] == list(menor.merges.items())


def test_treino_aprende_portugues(treinado):
    tokens = set(treinado.vocab.values())
    for pedaco in ["ão", " de", " que", "ç"]:
        assert pedaco.encode("utf-8") in tokens, pedaco
    # comprime: bem menos tokens que bytes
    texto = load_text("memorial-de-aires")[:20_000]
    assert len(treinado.encode(texto)) < 0.5 * len(texto.encode("utf-8"))


def test_tokens_especiais_e_erros(treinado):
    s = "Capitu<|endoftext|>Bentinho"
    with pytest.raises(ValueError, match="allowed_special"):
        treinado.encode(s)
    ids = treinado.encode(s, allowed_special={"<|endoftext|>"})
    assert ids.count(699) == 1 and treinado.decode(ids) == s
    assert treinado.encode(s, allowed_special="all") == ids
    with pytest.raises(ValueError, match="não existe"):
        treinado.decode([10_000])
    with pytest.raises(ValueError, match="pequeno demais"):
        BPETokenizer().train("abc", vocab_size=100)
    with pytest.raises(ValueError, match="vazio"):
        BPETokenizer().train("", vocab_size=300)
    with pytest.raises(ValueError, match="UTF-8"):
        treinado.encode("a\ud800b")


def test_pre_tokenizacao_igual_ao_padrao_original():
    regex = pytest.importorskip("regex")  # o módulo `regex` entende \p{L}; o curso não depende dele
    original = regex.compile(r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s""")
    sorteio = random.Random(3)
    for _ in range(3000):
        s = texto_aleatorio(sorteio)
        assert gpt2_pretokenizer().findall(s) == original.findall(s), repr(s)


def test_gptdataset_formatos_e_deslocamento(tiktoken_gpt2):
    texto = load_text("domCasmurro")[:5000]
    ids = tiktoken_gpt2.encode(texto)
    for max_length, stride in [(4, 1), (8, 4), (16, 16)]:
        ds = GPTDataset(texto, tiktoken_gpt2, max_length=max_length, stride=stride)
        assert len(ds) == len(range(0, len(ids) - max_length, stride))
        for i in (0, len(ds) - 1):
            x, y = ds[i]
            assert x.shape == y.shape == (max_length,) and x.dtype == torch.long
            assert x.tolist() == ids[i * stride:i * stride + max_length]
            assert y.tolist() == ids[i * stride + 1:i * stride + max_length + 1]
    with pytest.raises(ValueError):
        GPTDataset("curto demais", tiktoken_gpt2, max_length=50, stride=1)


def test_create_dataloader(treinado):
    texto = load_text("domCasmurro")[:20_000]
    carregador = create_dataloader(texto, batch_size=8, max_length=32, stride=32, shuffle=False)
    x, y = next(iter(carregador))
    assert x.shape == y.shape == (8, 32)
    assert torch.equal(x[:, 1:], y[:, :-1])
    assert torch.equal(x[1:, 0], y[:-1, -1])  # stride = max_length: janelas encostadas
    assert all(xb.shape[0] == 8 for xb, _ in carregador)  # drop_last
    # qualquer tokenizador com encode(texto, allowed_special=...) serve, inclusive o nosso BPE
    nosso = create_dataloader(texto, batch_size=4, max_length=16, stride=8, shuffle=False, tokenizer=treinado)
    xb, yb = next(iter(nosso))
    assert xb.shape == (4, 16) and int(xb.max()) < treinado.n_vocab


@pytest.mark.parametrize("texto", [
    "o rato roeu a roupa do rei de roma; a rainha roeu o resto",
    "aaaa aaa aa a abab ababab " * 5,  # pares sobrepostos e empates
    "ab" * 10 + " abc" * 4 + " bca" * 4 + " cab" * 4,  # pedaços com os mesmos pares em ordens diferentes
])
def test_bpe_ingenuo_igual_ao_rapido_textos_feitos(texto):
    for n_merges in (1, 5, 40):
        rapido = BPETokenizer().train(texto, vocab_size=256 + n_merges + 1)
        assert list(train_bpe_naive(texto, n_merges).items()) == list(rapido.merges.items())


def test_bpe_ingenuo_igual_ao_rapido_em_machado():
    texto = load_text("memorial-de-aires")[:4000]
    ingenuo = train_bpe_naive(texto, 80)
    assert len(ingenuo) == 80
    assert list(ingenuo.items()) == list(BPETokenizer().train(texto, vocab_size=256 + 80 + 1).merges.items())


def test_bpe_ingenuo_para_quando_acabam_os_pares():
    assert train_bpe_naive("ab ab", 10) == {(97, 98): 256, (32, 256): 257}


def test_pad_batch_igual_ao_pad_sequence():
    sorteio = random.Random(5)
    seqs = [[sorteio.randrange(1000) for _ in range(sorteio.randint(0, 9))] for _ in range(6)] + [[1, 2, 3]]
    ids, mask = pad_batch(seqs, pad_id=-7)
    referencia = torch.nn.utils.rnn.pad_sequence([torch.tensor(s, dtype=torch.long) for s in seqs],
                                                 batch_first=True, padding_value=-7)
    assert torch.equal(ids, referencia) and ids.dtype == torch.long
    assert mask.dtype == torch.bool and mask.shape == ids.shape
    assert mask.sum(dim=1).tolist() == [len(s) for s in seqs]
    assert all(mask[i, :len(s)].all() and not mask[i, len(s):].any() for i, s in enumerate(seqs))
    with pytest.raises(ValueError, match="vazio"):
        pad_batch([], pad_id=0)


def test_cooccurrence_counts_igual_a_contagem_em_laco():
    sorteio = random.Random(9)
    ids = [sorteio.randrange(-1, 6) for _ in range(200)]  # -1 = fora do vocabulário
    for janela in (1, 3):
        esperado = [[0] * 6 for _ in range(6)]
        for i, a in enumerate(ids):
            for j in range(max(0, i - janela), min(len(ids), i + janela + 1)):
                if j != i and a >= 0 and ids[j] >= 0:
                    esperado[a][ids[j]] += 1
        obtido = cooccurrence_counts(torch.tensor(ids), 6, janela)
        assert obtido.tolist() == esperado
        assert torch.equal(obtido, obtido.T)


def test_ppmi_igual_a_formula():
    contagens = torch.tensor([[0., 4., 1.], [4., 2., 0.], [1., 0., 9.]], dtype=torch.float64)
    total = contagens.sum().item()
    obtido = ppmi(contagens)
    for i in range(3):
        for j in range(3):
            c = contagens[i, j].item()
            if c == 0:
                esperado = 0.0
            else:
                p_i, p_j = contagens[i].sum().item() / total, contagens[:, j].sum().item() / total
                pmi = math.log((c / total) / (p_i * p_j))
                esperado = max(0.0, pmi)
            assert obtido[i, j].item() == pytest.approx(esperado, abs=1e-12)
    assert (obtido >= 0).all() and obtido[0, 1] > 0 and obtido[0, 2] == 0  # o par (0, 2) é raro: PMI negativa


def test_posicoes_senoidais_iguais_a_formula():
    tabela = sinusoidal_position_encoding(50, 16)
    assert tabela.shape == (50, 16)
    for p in range(50):
        for i in range(8):
            angulo = p / 10000 ** (2 * i / 16)
            assert tabela[p, 2 * i].item() == pytest.approx(math.sin(angulo), abs=1e-5)
            assert tabela[p, 2 * i + 1].item() == pytest.approx(math.cos(angulo), abs=1e-5)
    produtos = torch.stack([tabela[p] @ tabela[p + 4] for p in range(40)])  # só depende da distância
    assert torch.allclose(produtos, produtos[0].expand(40), atol=1e-4)
    with pytest.raises(ValueError, match="par"):
        sinusoidal_position_encoding(4, 7)


# ---------------------------------------------------------------- o tokenizador do curso

def test_tokenizador_do_curso_tamanho_e_token_especial(bpe_do_curso, tiktoken_do_curso):
    assert tiktoken_do_curso.n_vocab == bpe_do_curso.n_vocab == COURSE_VOCAB_SIZE == 8192
    assert len(bpe_do_curso.merges) == COURSE_VOCAB_SIZE - 256 - 1
    assert tiktoken_do_curso.eot_token == bpe_do_curso.special_tokens["<|endoftext|>"] == 8191
    assert set(HELD_OUT_BOOKS) < set(MACHADO_BOOKS)


def test_to_tiktoken_identico_ao_nosso_encode_em_todos_os_livros(bpe_do_curso, tiktoken_do_curso):
    for livro in MACHADO_BOOKS:                      # os livros inteiros, inclusive os dois que ficaram de fora
        texto = load_text(livro)
        assert tiktoken_do_curso.encode(texto) == bpe_do_curso.encode(texto), livro


def test_to_tiktoken_identico_em_unicode_aleatorio_e_com_token_especial(bpe_do_curso, tiktoken_do_curso):
    sorteio = random.Random(13)
    for _ in range(3000):
        s = texto_aleatorio(sorteio)
        ids = tiktoken_do_curso.encode(s)
        assert ids == bpe_do_curso.encode(s), repr(s)
        assert tiktoken_do_curso.decode(ids) == s
    s = "Capitu<|endoftext|> e Bentinho"
    assert (tiktoken_do_curso.encode(s, allowed_special={"<|endoftext|>"})
            == bpe_do_curso.encode(s, allowed_special={"<|endoftext|>"}))
    assert 8191 in tiktoken_do_curso.encode(s, allowed_special="all")
    with pytest.raises(ValueError):
        tiktoken_do_curso.encode(s)                  # sem permissão, o token especial é recusado (como no nosso)


def test_to_tiktoken_de_um_bpe_pequeno_qualquer(treinado):
    rapido = treinado.to_tiktoken("mini")
    trecho = load_text("memorial-de-aires")[:20_000]
    assert rapido.encode(trecho) == treinado.encode(trecho)
    assert rapido.n_vocab == treinado.n_vocab


def test_salvar_e_ler_devolve_o_mesmo_tokenizador(tmp_path, treinado):
    caminho = treinado.save(tmp_path / "sub" / "bpe.json")
    assert not list(caminho.parent.glob("*.part"))
    lido = BPETokenizer.load(caminho)
    assert lido.merges == treinado.merges and lido.vocab == treinado.vocab
    assert lido.special_tokens == treinado.special_tokens
    assert lido.encode("Capitu, olhos de ressaca!") == treinado.encode("Capitu, olhos de ressaca!")


def test_arquivo_de_tokenizador_ruim_da_erro_claro(tmp_path):
    ruim = tmp_path / "ruim.json"
    ruim.write_text("{isto não é json")
    with pytest.raises(ValueError, match="ruim.json"):
        BPETokenizer.load(ruim)
    outro = tmp_path / "outro.json"
    outro.write_text('{"formato": "outra-coisa"}')
    with pytest.raises(ValueError, match="to_dict"):
        BPETokenizer.load(outro)
    incompleto = tmp_path / "incompleto.json"
    incompleto.write_text('{"formato": "BPETokenizer", "merges": [[1, 2]]}')
    with pytest.raises(ValueError, match="incompleto ou corrompido"):
        BPETokenizer.load(incompleto)


def test_cache_corrompido_e_refeito_com_as_mesmas_fusoes(tmp_path, monkeypatch, bpe_do_curso, capsys):
    """Treinar de novo, do zero, nos livros fora de HELD_OUT_BOOKS dá exatamente o tokenizador do curso."""
    monkeypatch.setattr(tokens, "cache_dir", lambda: tmp_path)
    cache = tmp_path / "tokenizadores" / f"machado-{COURSE_VOCAB_SIZE}.json"
    cache.parent.mkdir(parents=True)
    cache.write_text("corrompido")
    refeito = course_bpe()
    assert "treinar o tokenizador de novo" in capsys.readouterr().out
    assert refeito.to_dict() == bpe_do_curso.to_dict()
    assert BPETokenizer.load(cache).to_dict() == bpe_do_curso.to_dict()
