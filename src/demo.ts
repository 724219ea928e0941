/** The seed project's semantic-search example (README): the corpus and queries of `ko-sbert search` and examples/. */
export const DEMO_CORPUS = [
  '한 남자가 음식을 먹는다.',
  '한 남자가 빵 한 조각을 먹는다.',
  '그 여자가 아이를 돌본다.',
  '한 남자가 말을 탄다.',
  '한 여자가 바이올린을 연주한다.',
  '두 남자가 수레를 숲 속으로 밀었다.',
  '한 남자가 담으로 싸인 땅에서 백마를 타고 있다.',
  '원숭이 한 마리가 드럼을 연주한다.',
  '치타 한 마리가 먹이 뒤에서 달리고 있다.',
];
export const DEMO_QUERIES = ['한 남자가 파스타를 먹는다.', '고릴라 의상을 입은 누군가가 드럼을 연주하고 있다.', '치타가 들판을 가로 질러 먹이를 쫓는다.'];
