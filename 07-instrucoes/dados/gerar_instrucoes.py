#!/usr/bin/env python3
"""Gera `instrucoes.json`, o conjunto de instruções em português do capítulo 07.

Tudo aqui foi escrito pelo curso: as tabelas (estados e capitais, antônimos, categorias, substantivos, frases de
opinião...) estão neste arquivo, e as respostas abertas escritas à mão estão em `abertas.json`, ao lado.
O gerador é determinístico: rodar de novo escreve o mesmo arquivo, byte a byte.

Cada exemplo tem o formato do Alpaca, com chaves em português e a partição já decidida:
    {"instrucao": ..., "entrada": ..., "saida": ..., "tarefa": ..., "particao": "treino" | "validacao" | "teste"}

A partição é decidida aqui, tarefa por tarefa, para que o teste meça generalização e não memória:
- tarefas de REGRA (sentimento, maior e menor número, primeira palavra, soma, plural) testam ITENS novos — frases,
  listas, pares de números, contas em ordem nova e substantivos que o treino nunca mostrou —, com as redações
  do treino;
- tarefas de FATOS (capital, antônimo, categoria) testam fatos vistos no treino, pedidos com uma redação que
  o treino usou para outros fatos, mas nunca para aquele (a combinação fato + redação é nova).
Cada tarefa fica perto de 85/5/10 (treino/validação/teste), e nenhum par (instrução, entrada) se repete.

Há ainda uma quarta partição, "teste_redacoes_novas": os MESMOS itens do teste, cada um pedido com uma redação
de REDACOES_NOVAS, escritas à parte e que o treino nunca usa. Comparada com o teste, ela mede quanto do acerto
depende das palavras exatas com que a tarefa foi treinada. Ela é gerada depois de todo o resto, sem sortear
nada, então não muda nenhuma das outras três partições.

Uso:
    python gerar_instrucoes.py                   # reescreve instrucoes.json ao lado deste arquivo
    python gerar_instrucoes.py --saida outro.json
"""
from __future__ import annotations

import argparse
import json
import random
from collections import Counter
from pathlib import Path

PASTA = Path(__file__).resolve().parent
SEMENTE = 2024
N_VAL, N_TESTE = 7, 14   # itens de validação e de teste por tarefa verificável (≈ 5 % e 10 % de ~140)

# ---------------------------------------------------------------------------------------------------------
# Tabelas escritas pelo curso
# ---------------------------------------------------------------------------------------------------------

# (estado, estado com a preposição certa, capital)
ESTADOS = [
    ("Acre", "do Acre", "Rio Branco"), ("Alagoas", "de Alagoas", "Maceió"), ("Amapá", "do Amapá", "Macapá"),
    ("Amazonas", "do Amazonas", "Manaus"), ("Bahia", "da Bahia", "Salvador"), ("Ceará", "do Ceará", "Fortaleza"),
    ("Espírito Santo", "do Espírito Santo", "Vitória"), ("Goiás", "de Goiás", "Goiânia"),
    ("Maranhão", "do Maranhão", "São Luís"), ("Mato Grosso", "de Mato Grosso", "Cuiabá"),
    ("Mato Grosso do Sul", "de Mato Grosso do Sul", "Campo Grande"),
    ("Minas Gerais", "de Minas Gerais", "Belo Horizonte"), ("Pará", "do Pará", "Belém"),
    ("Paraíba", "da Paraíba", "João Pessoa"), ("Paraná", "do Paraná", "Curitiba"),
    ("Pernambuco", "de Pernambuco", "Recife"), ("Piauí", "do Piauí", "Teresina"),
    ("Rio de Janeiro", "do Rio de Janeiro", "Rio de Janeiro"),
    ("Rio Grande do Norte", "do Rio Grande do Norte", "Natal"),
    ("Rio Grande do Sul", "do Rio Grande do Sul", "Porto Alegre"), ("Rondônia", "de Rondônia", "Porto Velho"),
    ("Roraima", "de Roraima", "Boa Vista"), ("Santa Catarina", "de Santa Catarina", "Florianópolis"),
    ("São Paulo", "de São Paulo", "São Paulo"), ("Sergipe", "de Sergipe", "Aracaju"),
    ("Tocantins", "do Tocantins", "Palmas"), ("Distrito Federal", "do Distrito Federal", "Brasília"),
]

ANTONIMOS = [
    ("alto", "baixo"), ("grande", "pequeno"), ("quente", "frio"), ("claro", "escuro"), ("rápido", "lento"),
    ("forte", "fraco"), ("novo", "velho"), ("rico", "pobre"), ("cheio", "vazio"), ("gordo", "magro"),
    ("limpo", "sujo"), ("fácil", "difícil"), ("bonito", "feio"), ("caro", "barato"), ("longe", "perto"),
    ("cedo", "tarde"), ("dia", "noite"), ("abrir", "fechar"), ("subir", "descer"), ("ganhar", "perder"),
    ("comprar", "vender"), ("certo", "errado"), ("doce", "amargo"), ("sempre", "nunca"), ("tudo", "nada"),
    ("dentro", "fora"), ("seco", "molhado"), ("feliz", "triste"),
]

CATEGORIAS = {
    "animal": ["gato", "cachorro", "cavalo", "vaca", "leão", "tigre", "pato", "galinha", "macaco", "coelho",
               "elefante", "porco"],
    "fruta": ["banana", "maçã", "uva", "manga", "abacaxi", "pera", "melancia", "limão", "morango", "caju",
              "goiaba", "mamão"],
    "cor": ["azul", "vermelho", "verde", "amarelo", "preto", "branco", "roxo", "rosa", "cinza", "marrom",
            "lilás", "bege"],
    "profissão": ["médico", "professor", "engenheiro", "padeiro", "motorista", "advogado", "enfermeiro",
                  "pintor", "cozinheiro", "carteiro", "dentista", "bombeiro"],
    "transporte": ["carro", "ônibus", "avião", "bicicleta", "trem", "navio", "moto", "barco", "metrô",
                   "caminhão", "helicóptero", "patinete"],
}
LISTA_CATEGORIAS = "animal, fruta, cor, profissão ou transporte"

# Substantivos de plural regular (só se acrescenta -s).
SUBSTANTIVOS = [
    "casa", "gato", "livro", "mesa", "porta", "janela", "carro", "menino", "menina", "escola", "cadeira",
    "caneta", "árvore", "cidade", "praia", "estrela", "pedra", "ponte", "rua", "loja", "barco", "copo",
    "prato", "garfo", "faca", "panela", "cama", "sofá", "tapete", "quadro", "relógio", "sapato", "camisa",
    "saia", "meia", "bolsa", "chave", "carta", "caderno", "borracha", "régua", "mochila", "amigo", "amiga",
    "vizinho", "tio", "tia", "primo", "prima", "filho", "filha", "neto", "neta", "irmão", "aluno", "aluna",
    "artista", "poeta", "pato", "macaco", "coelho", "cavalo", "vaca", "galinha", "peixe", "sapo", "abelha",
    "formiga", "borboleta", "lobo", "urso", "tigre", "girafa", "zebra", "cobra", "banana", "uva", "manga",
    "laranja", "cenoura", "batata", "tomate", "cebola", "bolo", "doce", "sorvete", "biscoito", "queijo",
    "ovo", "teclado", "tela", "fone", "cabo", "lâmpada", "vela", "espelho", "pente", "toalha", "escova",
    "balde", "vaso", "planta", "semente", "folha", "tronco", "rio", "lago", "montanha", "ilha", "floresta",
    "estrada", "bilhete", "mapa", "caminho", "parede", "escada", "sala", "cozinha", "varanda", "festa",
    "dança", "música", "piada", "história", "palavra", "frase", "página", "revista", "notícia",
]

# Frases de opinião: sujeito (com gênero), adjetivos e verbos de cada polaridade.
SUJEITOS = [("filme", "o"), ("livro", "o"), ("restaurante", "o"), ("atendimento", "o"), ("passeio", "o"),
            ("show", "o"), ("jantar", "o"), ("hotel", "o"), ("jogo", "o"), ("presente", "o"), ("café", "o"),
            ("curso", "o"), ("comida", "a"), ("viagem", "a"), ("música", "a"), ("aula", "a"), ("festa", "a"),
            ("praia", "a"), ("série", "a"), ("peça", "a"), ("loja", "a"), ("pizza", "a"), ("novela", "a"),
            ("entrega", "a")]
ADJETIVOS = {  # polaridade -> (masculino, feminino)
    "positivo": [("ótimo", "ótima"), ("excelente", "excelente"), ("maravilhoso", "maravilhosa"),
                 ("incrível", "incrível"), ("agradável", "agradável"), ("lindo", "linda"),
                 ("divertido", "divertida"), ("perfeito", "perfeita"), ("bom", "boa"), ("fantástico", "fantástica")],
    "negativo": [("péssimo", "péssima"), ("horrível", "horrível"), ("terrível", "terrível"), ("chato", "chata"),
                 ("ruim", "ruim"), ("fraco", "fraca"), ("decepcionante", "decepcionante"),
                 ("cansativo", "cansativa"), ("desagradável", "desagradável"), ("lamentável", "lamentável")],
}
VERBOS_OPINIAO = {"positivo": ["Adorei", "Amei", "Recomendo"], "negativo": ["Odiei", "Detestei", "Não recomendo"]}
LIGACOES = ["foi", "é", "estava", "ficou"]
INTENSIDADES = ["", "realmente "]

# "Primeira palavra": listas de 3 a 5 palavras tiradas de todas as tabelas acima, mais estes nomes próprios.
NOMES = ["Maria", "João", "Pedro", "Ana", "Lucas", "Beatriz", "Carlos", "Júlia", "Rafael", "Camila", "Tiago",
         "Fernanda", "Bruno", "Larissa", "Gabriel", "Mariana", "Diego", "Paula", "Renato", "Sofia", "Helena",
         "Vítor", "Clara", "Marcos", "Lúcia", "Otávio", "Isabel", "Rodrigo", "Alice", "Felipe", "Teresa",
         "Gustavo"]

# Redações de cada tarefa: (instrução, entrada), em que {x}, {a}, {b} e {de} são preenchidos com o item.
REDACOES = {
    "sentimento": [("Classifique o sentimento da frase como positivo ou negativo.", "{x}"),
                   ("A opinião abaixo é positiva ou negativa?", "{x}"),
                   ("Qual é o sentimento desta frase: positivo ou negativo?", "{x}"),
                   ("Diga se a avaliação é positiva ou negativa.", "{x}")],
    "primeira_palavra": [("Qual é a primeira palavra da lista?", "{x}"),
                         ("Escreva só a primeira palavra.", "{x}"),
                         ("Copie a primeira palavra da lista.", "{x}"),
                         ("Com que palavra a lista começa?", "{x}")],
    "maior_numero": [("Qual é o maior número: {a} ou {b}?", ""),
                     ("Qual número é maior, {a} ou {b}?", ""),
                     ("Diga o maior dos dois números.", "{a} e {b}"),
                     ("Entre {a} e {b}, qual é o maior?", "")],
    "menor_numero": [("Qual é o menor número: {a} ou {b}?", ""),
                     ("Qual número é menor, {a} ou {b}?", ""),
                     ("Diga o menor dos dois números.", "{a} e {b}"),
                     ("Entre {a} e {b}, qual é o menor?", "")],
    "soma": [("Quanto é {a} + {b}?", ""),
             ("Some {a} e {b}.", ""),
             ("Calcule a soma.", "{a} + {b}"),
             ("Qual é o resultado de {a} mais {b}?", "")],
    "plural": [("Qual é o plural de {x}?", ""),
               ("Escreva a palavra {x} no plural.", ""),
               ("Passe a palavra para o plural.", "{x}"),
               ("Como fica {x} no plural?", "")],
    "capital": [("Qual é a capital {de}?", ""),
                ("Diga a capital {de}.", ""),
                ("Qual cidade é a capital {de}?", ""),
                ("Responda com a capital do estado.", "{x}"),
                ("Escreva o nome da capital {de}.", ""),
                ("Informe a capital deste estado.", "{x}")],
    "antonimo": [("Qual é o antônimo de {x}?", ""),
                 ("Diga o contrário de {x}.", ""),
                 ("Escreva o antônimo da palavra.", "{x}"),
                 ("Qual palavra significa o oposto de {x}?", "")],
    "categoria": [(f"A que categoria pertence {{x}}: {LISTA_CATEGORIAS}?", ""),
                  (f"Classifique a palavra: {LISTA_CATEGORIAS}.", "{x}"),
                  (f"A palavra {{x}} é {LISTA_CATEGORIAS}?", ""),
                  (f"Em qual categoria a palavra se encaixa: {LISTA_CATEGORIAS}?", "{x}")],
}


# Redações que o treino NUNCA usa, só para a partição "teste_redacoes_novas" (três por tarefa).
REDACOES_NOVAS = {
    "sentimento": [("Essa frase elogia ou critica? Responda positivo ou negativo.", "{x}"),
                   ("Leia a frase e diga o sentimento dela, positivo ou negativo.", "{x}"),
                   ("O que a pessoa achou: positivo ou negativo?", "{x}")],
    "primeira_palavra": [("Que palavra abre a lista?", "{x}"),
                         ("Repita apenas a palavra inicial.", "{x}"),
                         ("Diga a palavra que vem antes de todas as outras.", "{x}")],
    "maior_numero": [("Dos números {a} e {b}, qual vale mais?", ""),
                     ("Escolha o número mais alto.", "{a} e {b}"),
                     ("Me diga qual é maior: {a} ou {b}.", "")],
    "menor_numero": [("Dos números {a} e {b}, qual vale menos?", ""),
                     ("Escolha o número mais baixo.", "{a} e {b}"),
                     ("Me diga qual é menor: {a} ou {b}.", "")],
    "soma": [("Quanto dá {a} mais {b}?", ""),
             ("Faça a conta e responda só o número.", "{a} + {b}"),
             ("Se eu juntar {a} com {b}, quanto fica?", "")],
    "plural": [("Escreva o plural de {x}.", ""),
               ("Dê a forma plural da palavra.", "{x}"),
               ("Qual seria o plural da palavra {x}?", "")],
    "capital": [("Você sabe qual é a capital {de}?", ""),
                ("Me diga o nome da capital {de}.", ""),
                ("Que cidade é a capital do estado?", "{x}")],
    "antonimo": [("Qual é o contrário de {x}?", ""),
                 ("Dê uma palavra de sentido oposto a {x}.", ""),
                 ("Escreva o oposto da palavra.", "{x}")],
    "categoria": [(f"Diga a categoria de {{x}}: {LISTA_CATEGORIAS}.", ""),
                  (f"Qual categoria descreve a palavra: {LISTA_CATEGORIAS}?", "{x}"),
                  (f"Em que grupo entra {{x}}: {LISTA_CATEGORIAS}?", "")],
}


# ---------------------------------------------------------------------------------------------------------
# Geração
# ---------------------------------------------------------------------------------------------------------

def exemplo(tarefa: str, redacao: tuple[str, str], saida: str, particao: str, **campos) -> dict:
    """Preenche uma redação (instrução, entrada) com os campos do item e monta o exemplo."""
    instrucao, entrada = redacao
    return {"instrucao": instrucao.format(**campos), "entrada": entrada.format(**campos), "saida": saida,
            "tarefa": tarefa, "particao": particao, "_campos": campos}


def particoes_de_itens(itens: list, rng: random.Random) -> dict[str, list]:
    """Embaralha itens distintos e separa N_TESTE para teste, N_VAL para validação e o resto para treino."""
    itens = list(itens)
    rng.shuffle(itens)
    return {"teste": itens[:N_TESTE], "validacao": itens[N_TESTE:N_TESTE + N_VAL],
            "treino": itens[N_TESTE + N_VAL:]}


def tarefa_de_regra(tarefa: str, partes: dict[str, list], montar, rng: random.Random, n_treino: int) -> list[dict]:
    """Tarefas de regra: teste e validação usam itens que o treino nunca viu (com as mesmas redações).

    `montar(item)` devolve (campos, saída). Cada item de treino aparece com 1 ou 2 redações, até `n_treino`.
    """
    redacoes = REDACOES[tarefa]
    dados = []
    for particao in ("teste", "validacao"):
        for item in partes[particao]:
            campos, saida = montar(item)
            dados.append(exemplo(tarefa, rng.choice(redacoes), saida, particao, **campos))
    pares = [(item, r) for item in partes["treino"] for r in rng.sample(redacoes, 2)]
    pares = pares[::2] + pares[1::2]   # primeiro uma redação de cada item, depois as segundas
    for item, redacao in pares[:n_treino]:
        campos, saida = montar(item)
        dados.append(exemplo(tarefa, redacao, saida, "treino", **campos))
    return dados


def tarefa_de_fatos(tarefa: str, fatos: list, montar, rng: random.Random, por_fato: int) -> list[dict]:
    """Tarefas de fatos: o treino vê cada fato com `por_fato` das redações. Validação e teste pedem um fato já
    visto com uma redação que o treino usou para OUTROS fatos, mas nunca para aquele."""
    redacoes = REDACOES[tarefa]
    dados, nao_usadas = [], []
    for fato in fatos:
        escolhidas = set(rng.sample(range(len(redacoes)), por_fato))
        campos, saida = montar(fato)
        for i, redacao in enumerate(redacoes):
            if i in escolhidas:
                dados.append(exemplo(tarefa, redacao, saida, "treino", **campos))
            else:
                nao_usadas.append((fato, redacao))
    rng.shuffle(nao_usadas)
    ja_testados = set()
    for particao, n in (("teste", N_TESTE), ("validacao", N_VAL)):
        for fato, redacao in [(f, r) for f, r in nao_usadas if f not in ja_testados][:n]:
            ja_testados.add(fato)
            campos, saida = montar(fato)
            dados.append(exemplo(tarefa, redacao, saida, particao, **campos))
    return dados


def gerar_sentimento(rng: random.Random) -> list[dict]:
    # Um item é (substantivo, artigo, palavra de opinião, polaridade); teste e validação usam combinações
    # (substantivo, palavra de opinião) que o treino nunca mostrou — cada palavra sozinha, porém, é conhecida.
    itens = []
    for nome, artigo in SUJEITOS:
        for polaridade in ("positivo", "negativo"):
            itens += [(nome, artigo, adj, polaridade) for adj in ADJETIVOS[polaridade]]
            itens += [(nome, artigo, verbo, polaridade) for verbo in VERBOS_OPINIAO[polaridade]]

    def montar(item):
        nome, artigo, palavra, polaridade = item
        fim = rng.choice([".", "!"])
        if isinstance(palavra, tuple):
            adjetivo = palavra[0] if artigo == "o" else palavra[1]
            frase = f"{artigo.upper()} {nome} {rng.choice(LIGACOES)} {rng.choice(INTENSIDADES)}{adjetivo}{fim}"
        else:
            frase = f"{palavra} {artigo} {nome}{fim}"
        return {"x": frase}, polaridade

    partes = particoes_de_itens(itens, rng)
    return tarefa_de_regra("sentimento", partes, montar, rng, n_treino=119)


def gerar_primeira_palavra(rng: random.Random) -> list[dict]:
    # Listas de 3 a 5 palavras de todas as tabelas. Só 60 palavras abrem listas, e todas abrem listas de treino
    # (o modelo precisa já ter escrito uma palavra para conseguir escrevê-la); teste e validação são listas novas.
    palavras = sorted(set(SUBSTANTIVOS + NOMES + [p for ps in CATEGORIAS.values() for p in ps]
                          + [p for par in ANTONIMOS for p in par]))
    rng.shuffle(palavras)
    primeiras = palavras[:60]

    def lista(primeira: str) -> str:
        return ", ".join([primeira] + rng.sample([p for p in palavras if p != primeira], rng.randint(2, 4)))

    abertura = primeiras * 2
    rng.shuffle(abertura)
    partes = {"treino": [lista(p) for p in abertura[:119]],
              "teste": [lista(p) for p in rng.sample(primeiras, N_TESTE)],
              "validacao": [lista(p) for p in rng.sample(primeiras, N_VAL)]}
    return tarefa_de_regra("primeira_palavra", partes, lambda x: ({"x": x}, x.split(",")[0]), rng, n_treino=119)


def gerar_maior_e_menor(rng: random.Random) -> list[dict]:
    # Números de 1 a 20, duas tarefas com as mesmas entradas: só a instrução diz se queremos o maior ou o menor.
    # Teste e validação usam pares que o treino nunca comparou (em nenhuma ordem, em nenhuma das duas tarefas).
    pares = [(a, b) for a in range(1, 21) for b in range(a + 1, 21)]
    rng.shuffle(pares)
    n = N_TESTE + N_VAL
    reservados = {"maior_numero": pares[:n], "menor_numero": pares[n:2 * n]}
    treino = pares[2 * n:]
    dados = []
    for tarefa, escolher in (("maior_numero", max), ("menor_numero", min)):
        def montar(par, escolher=escolher):
            a, b = par if rng.random() < 0.5 else par[::-1]
            return {"a": a, "b": b}, str(escolher(a, b))

        partes = {"teste": reservados[tarefa][:N_TESTE], "validacao": reservados[tarefa][N_TESTE:],
                  "treino": rng.sample(treino, len(treino))}
        dados += tarefa_de_regra(tarefa, partes, montar, rng, n_treino=119)
    return dados


def gerar_soma(rng: random.Random) -> list[dict]:
    # Parcelas de 0 a 9. Teste e validação pedem contas que o treino nunca fez NESTA ordem, mas cuja ordem
    # inversa ele fez (3 + 8 no teste, 8 + 3 no treino): medem se o modelo aprendeu que a ordem não importa.
    contas = [(a, b) for a in range(10) for b in range(10) if a != b]
    rng.shuffle(contas)
    reservadas: list[tuple[int, int]] = []
    for conta in contas:
        if len(reservadas) < N_TESTE + N_VAL and conta[::-1] not in reservadas:
            reservadas.append(conta)
    partes = {"teste": reservadas[:N_TESTE], "validacao": reservadas[N_TESTE:],
              "treino": [(a, b) for a in range(10) for b in range(10) if (a, b) not in reservadas]}
    return tarefa_de_regra("soma", partes, lambda c: ({"a": c[0], "b": c[1]}, str(sum(c))), rng, n_treino=119)


def gerar_plural(rng: random.Random) -> list[dict]:
    # Teste e validação pedem o plural de substantivos que o treino nunca mostrou.
    partes = particoes_de_itens(sorted(set(SUBSTANTIVOS)), rng)
    return tarefa_de_regra("plural", partes, lambda s: ({"x": s}, s + "s"), rng, n_treino=119)


def gerar_capital(rng: random.Random) -> list[dict]:
    return tarefa_de_fatos("capital", ESTADOS, lambda e: ({"x": e[0], "de": e[1]}, e[2]), rng, por_fato=4)


def gerar_antonimo(rng: random.Random) -> list[dict]:
    fatos = [par for a, b in ANTONIMOS for par in ((a, b), (b, a))]
    return tarefa_de_fatos("antonimo", fatos, lambda p: ({"x": p[0]}, p[1]), rng, por_fato=2)


def gerar_categoria(rng: random.Random) -> list[dict]:
    fatos = [(palavra, cat) for cat, palavras in CATEGORIAS.items() for palavra in palavras]
    return tarefa_de_fatos("categoria", fatos, lambda f: ({"x": f[0]}, f[1]), rng, por_fato=2)


def gerar_abertas(rng: random.Random) -> list[dict]:
    """As perguntas abertas escritas à mão (abertas.json): mostradas no teste, não pontuadas."""
    abertas = json.loads((PASTA / "abertas.json").read_text(encoding="utf-8"))
    ordem = list(range(len(abertas)))
    rng.shuffle(ordem)
    n_teste, n_val = round(0.10 * len(abertas)), round(0.05 * len(abertas))
    particao = {i: "teste" if k < n_teste else "validacao" if k < n_teste + n_val else "treino"
                for k, i in enumerate(ordem)}
    return [{**e, "tarefa": "aberta", "particao": particao[i]} for i, e in enumerate(abertas)]


GERADORES = [gerar_sentimento, gerar_capital, gerar_antonimo, gerar_categoria, gerar_maior_e_menor,
             gerar_primeira_palavra, gerar_soma, gerar_plural, gerar_abertas]


def redacoes_novas(teste: list[dict]) -> list[dict]:
    """Os itens do teste pedidos de novo, cada um com uma das REDACOES_NOVAS da sua tarefa (em rodízio, para que
    as três apareçam quase o mesmo número de vezes). Mesma resposta, mesmo item: só a redação muda."""
    dados, vistos = [], Counter()
    for e in teste:
        redacoes = REDACOES_NOVAS[e["tarefa"]]
        redacao = redacoes[vistos[e["tarefa"]] % len(redacoes)]
        vistos[e["tarefa"]] += 1
        dados.append(exemplo(e["tarefa"], redacao, e["saida"], "teste_redacoes_novas", **e["_campos"]))
    return dados


def gerar() -> list[dict]:
    """Todos os exemplos, tarefa por tarefa, cada tarefa com o seu próprio gerador aleatório semeado; no fim, o
    teste de redações novas (os itens verificáveis do teste com as REDACOES_NOVAS)."""
    ordem = {"treino": 0, "validacao": 1, "teste": 2}
    dados = []
    for i, gerador in enumerate(GERADORES):
        dados += sorted(gerador(random.Random(SEMENTE + i)), key=lambda e: ordem[e["particao"]])
    dados += redacoes_novas([e for e in dados if e["particao"] == "teste" and e["tarefa"] in REDACOES_NOVAS])
    for e in dados:
        e.pop("_campos", None)
    chaves = [(e["instrucao"], e["entrada"]) for e in dados]
    if len(chaves) != len(set(chaves)):
        raise ValueError("Há exemplos repetidos (mesma instrução e entrada): confira as tabelas.")
    return dados


def escrever(dados: list[dict], caminho: Path) -> None:
    """Um exemplo por linha: o arquivo continua JSON válido e as mudanças ficam fáceis de ler no git."""
    linhas = ",\n".join(json.dumps(e, ensure_ascii=False) for e in dados)
    caminho.write_text(f"[\n{linhas}\n]\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--saida", type=Path, default=PASTA / "instrucoes.json", help="arquivo a escrever")
    args = parser.parse_args()
    dados = gerar()
    escrever(dados, args.saida)
    print(f"{len(dados)} exemplos escritos em {args.saida.name}")


if __name__ == "__main__":
    main()
